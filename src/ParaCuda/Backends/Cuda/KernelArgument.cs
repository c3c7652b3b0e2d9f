namespace ParaCuda.Backends.Cuda;

/// <summary>One kernel argument as the driver wants it: the bytes of a scalar, or a device pointer.</summary>
public readonly struct KernelArgument
{
    private KernelArgument(ulong bits) => Bits = bits;

    /// <summary>The value in the low bytes of a 64-bit slot (little-endian, as every CUDA host is).</summary>
    internal ulong Bits { get; }

    /// <summary>
    /// Lays the arguments out as cuLaunchKernel reads them: one 64-bit slot per argument, and a pointer to
    /// each slot. Both spans must hold <paramref name="arguments"/>.Length entries.
    /// </summary>
    public static unsafe void Pack(ReadOnlySpan<KernelArgument> arguments, ulong* slots, void** pointers)
    {
        for (var i = 0; i < arguments.Length; i++)
        {
            slots[i] = arguments[i].Bits;
            pointers[i] = slots + i;
        }
    }

    public static implicit operator KernelArgument(int value) => new((uint)value);

    public static implicit operator KernelArgument(long value) => new((ulong)value);

    public static implicit operator KernelArgument(ulong value) => new(value);

    public static implicit operator KernelArgument(float value) => new(BitConverter.SingleToUInt32Bits(value));

    public static implicit operator KernelArgument(bool value) => new(value ? 1u : 0u);
}
