namespace PmemService.Client.Tests;

/// <summary>examples/node and examples/dotnet, each as its own process, against a real server over the Unix socket.</summary>
public sealed class ExamplesTests : IClassFixture<ServerFixture>
{
    private readonly PmemServer _server;

    public ExamplesTests(ServerFixture fixture) => _server = fixture.Server;

    [Fact]
    public async Task Node_example_maps_writes_reads_and_streams_over_the_socket()
    {
        var dir = Path.Combine(MetricsTests.RepoRoot(), "examples", "node");
        Assert.True(Directory.Exists(Path.Combine(dir, "node_modules", "@grpc", "grpc-js")),
            "examples/node/node_modules is missing: run 'npm ci' in examples/node (.ci/run does; needs the Debian nodejs package)");
        var (code, node) = await ChildProcess.RunAsync("node", ["client.js", _server.UnixAddress, TestData.Name("node")], dir);
        using (node)
        {
            Assert.True(code == 0, $"exit {code}\n{node.Stdout}\n{node.Stderr}");
            Assert.Contains("stream read: 3145728 bytes, identical", node.Stdout, StringComparison.Ordinal);
            Assert.EndsWith("node example: OK", node.Stdout.Trim(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Dotnet_example_maps_writes_reads_and_streams_over_the_socket()
    {
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        var dll = Path.Combine(MetricsTests.RepoRoot(), "examples", "dotnet", "bin", baseDir.Parent!.Name, baseDir.Name, "PmemExample.dll");
        Assert.True(File.Exists(dll), dll);
        var (code, example) = await ChildProcess.RunAsync(dll, [_server.UnixAddress, TestData.Name("dotnet")]);
        using (example)
        {
            Assert.True(code == 0, $"exit {code}\n{example.Stdout}\n{example.Stderr}");
            Assert.Contains("stream read: 3145728 bytes, identical", example.Stdout, StringComparison.Ordinal);
            Assert.EndsWith(".NET example: OK", example.Stdout.Trim(), StringComparison.Ordinal);
        }
    }
}
