using System.Reflection;

namespace ParaCuda;

/// <summary>Process-wide facts and settings of the engine that a host program may want to read or set.</summary>
public static class Engine
{
    private static int s_threads = Environment.ProcessorCount;

    /// <summary>The engine's version, as its package and the C ABI report it.</summary>
    public static string Version { get; } =
        typeof(Engine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>
    /// How many threads the CPU backend and the data loaders may keep busy at once (default: one per core). A
    /// host that runs the engine beside its own work lowers it; results do not depend on it, only speed.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is below 1.</exception>
    public static int Threads
    {
        get => Volatile.Read(ref s_threads);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            Volatile.Write(ref s_threads, value);
        }
    }
}
