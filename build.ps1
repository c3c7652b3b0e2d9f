# Thin wrapper over the dotnet commands in README.md: ./build.ps1 build | test | publish
param([ValidateSet('build', 'test', 'publish')][string]$Task = 'build')
$ErrorActionPreference = 'Stop'
switch ($Task) {
    'build' { dotnet build ParaCuda.sln -c Release }
    'test' { dotnet test -c Release }
    'publish' { dotnet publish src/ParaCuda.Cli -c Release -o artifacts/paracuda }
}
exit $LASTEXITCODE
