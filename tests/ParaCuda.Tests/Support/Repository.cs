namespace ParaCuda.Tests.Support;

/// <summary>The source tree the test binaries were built from.</summary>
internal static class Repository
{
    /// <summary>The folder holding ParaCuda.sln, found by walking up from the test binaries.</summary>
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ParaCuda.sln")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException("no ParaCuda.sln above the test binaries");
    }
}
