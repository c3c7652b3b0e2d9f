using System.IO.Compression;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Embedding;

/// <summary>
/// The packages as a host program meets them: ParaCuda and ParaCuda.Native are packed into a folder feed, and a
/// throw-away console project whose Program.cs is the README's .NET example references ParaCuda from that feed
/// (restored into a packages folder of its own, so no cached copy stands in), builds, trains, evaluates and
/// predicts.
/// </summary>
[NonParallelizable]
public class PackageTests
{
    /// <summary>The first csharp block of the README's ".NET" section under "Embedding".</summary>
    private static string ReadmeExample()
    {
        var readme = File.ReadAllText(Path.Combine(Repository.Root, "README.md"));
        var section = readme[readme.IndexOf("\n### .NET\n", StringComparison.Ordinal)..];
        var start = section.IndexOf("```csharp\n", StringComparison.Ordinal) + "```csharp\n".Length;
        return section[start..section.IndexOf("\n```", start, StringComparison.Ordinal)];
    }

    [Test]
    public void The_readme_example_builds_and_runs_against_the_packed_package()
    {
        var dir = Directory.CreateTempSubdirectory("paracuda-package-").FullName;
        try
        {
            var feed = Path.Combine(dir, "feed");
            foreach (var project in new[] { "native/ParaCuda.Native", "src/ParaCuda" })
            {
                var pack = ExternalTools.Run(ExternalTools.Dotnet, ["pack", Path.Combine(Repository.Root, project), "-c", "Release", "-o", feed, "-nologo", "--disable-build-servers", "-nodeReuse:false"]);
                Assert.That(pack.Code, Is.Zero, pack.Stdout + pack.Stderr);
            }

            var package = Path.Combine(feed, $"ParaCuda.{Engine.Version}.nupkg");
            using (var zip = ZipFile.OpenRead(package))
            {
                var entries = zip.Entries.Select(e => e.FullName).ToList();
                var nuspec = new StreamReader(zip.GetEntry("ParaCuda.nuspec")!.Open()).ReadToEnd();
                Assert.Multiple(() =>
                {
                    Assert.That(entries, Does.Contain("lib/net10.0/ParaCuda.dll").And.Contain("lib/net10.0/ParaCuda.xml").And.Contain("README.md"));
                    Assert.That(nuspec, Does.Contain("<license type=\"expression\">MIT</license>").And.Contain("<dependency id=\"ParaCuda.Native\""));
                    Assert.That(File.Exists(Path.ChangeExtension(package, ".snupkg")), "symbols");
                });
            }

            var consumer = Directory.CreateDirectory(Path.Combine(dir, "consumer")).FullName;
            File.WriteAllText(Path.Combine(consumer, "Program.cs"), ReadmeExample());
            File.WriteAllText(Path.Combine(consumer, "Consumer.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="ParaCuda" Version="{Engine.Version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(consumer, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="paracuda-test-feed" value="{feed}" />
                  </packageSources>
                </configuration>
                """);

            var (code, stdout, stderr) = ExternalTools.Run(
                ExternalTools.Dotnet,
                ["run", "-c", "Release", "--disable-build-servers", "-p:UseSharedCompilation=false", "-nodeReuse:false"],
                consumer,
                new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(dir, "packages"), ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" });
            if (code != 0 && (stdout + stderr).Contains("NU1301", StringComparison.Ordinal))
            {
                ExternalTools.Require($"the package's dependencies could not be restored (no NuGet feed reachable): {stdout.Trim().Split('\n')[^1]}");
            }

            Assert.That(code, Is.Zero, stdout + stderr);
            Assert.Multiple(() =>
            {
                Assert.That(stdout, Does.Contain("epoch 1: test accuracy"));
                Assert.That(stdout, Does.Match(@"k=4: accuracy \d"));
                Assert.That(stdout, Does.Match(@"image 0: class \d \(label \d\)"));
                Assert.That(stdout, Does.Contain("served model agrees: True"));
            });
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
