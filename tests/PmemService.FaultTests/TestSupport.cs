using Google.Rpc;
using Grpc.Core;

namespace PmemService.FaultTests;

internal static class TestSupport
{
    public static async Task<(RpcException Exception, ErrorInfo Info)> AssertError(Func<Task> call, StatusCode code, string reason)
    {
        var exception = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(code == exception.StatusCode, $"expected {code}, got {exception.StatusCode}: {exception.Status.Detail}");
        var info = exception.GetRpcStatus()?.GetDetail<ErrorInfo>();
        Assert.NotNull(info);
        Assert.Equal(reason, info.Reason);
        Assert.Equal("pmem.v1", info.Domain);
        return (exception, info);
    }

    public static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>A short directory for sockets (sun_path holds 107 bytes).</summary>
    public static string NewTempDir(string under, string prefix)
    {
        var dir = Path.Combine(under, prefix + "-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}
