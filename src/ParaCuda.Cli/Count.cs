using System.Globalization;

namespace ParaCuda.Cli;

/// <summary>"1 block", "4 blocks": a number with its noun in the right form.</summary>
internal static class Count
{
    public static string Of(long n, string noun, string? plural = null) =>
        string.Create(CultureInfo.InvariantCulture, $"{n:N0} {(n == 1 ? noun : plural ?? noun + "s")}");
}
