#!/usr/bin/env pwsh
# Thin wrapper over the dotnet commands in README.md: ./build.ps1 build | test | publish | pack | native | kit
param([ValidateSet('build', 'test', 'publish', 'pack', 'native', 'kit')][string]$Task = 'build')
$ErrorActionPreference = 'Stop'
switch ($Task) {
    'build' { dotnet build ParaCuda.sln -c Release }
    'test' { dotnet test -c Release }
    'publish' { dotnet publish src/ParaCuda.Cli -c Release -o artifacts/paracuda }
    'pack' { dotnet pack ParaCuda.sln -c Release -o artifacts/packages }
    'native' { dotnet publish native/libparacuda -c Release -o artifacts/libparacuda }
    'kit' { dotnet msbuild perf/kit/Kit.proj }
}
exit $LASTEXITCODE
