using System.Diagnostics;
using Google.Rpc;
using Grpc.Core;
using PmemService.Contracts.V1;
using PmemRpcClient = PmemService.Contracts.V1.PmemService.PmemServiceClient;

namespace PmemService.Server.Tests;

internal static class TestHelpers
{
    public static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 128)];

    /// <summary>Asserts the call fails with <paramref name="code"/> and an ErrorInfo of domain pmem.v1 with <paramref name="reason"/>.</summary>
    public static async Task<(RpcException Exception, Google.Rpc.Status Status, ErrorInfo Info)> AssertError(Func<Task> call, StatusCode code, string reason)
    {
        var exception = await Assert.ThrowsAsync<RpcException>(call);
        Assert.Equal(code, exception.StatusCode);
        var status = exception.GetRpcStatus();
        Assert.NotNull(status);
        var info = status.GetDetail<ErrorInfo>();
        Assert.NotNull(info);
        Assert.Equal(reason, info.Reason);
        Assert.Equal("pmem.v1", info.Domain);
        return (exception, status, info);
    }

    public static void AssertFieldViolation(Google.Rpc.Status status, string field)
    {
        var badRequest = status.GetDetail<BadRequest>();
        Assert.NotNull(badRequest);
        Assert.Contains(badRequest.FieldViolations, v => v.Field == field);
    }

    public static async Task<RegionInfo> CreateAsync(PmemRpcClient client, string name, ulong size)
    {
        var response = await client.MapRegionAsync(new MapRegionRequest { Name = name, Size = size, CreateIfMissing = true });
        return response.Region;
    }

    public static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>Allocated bytes of a file (st_blocks * 512) from stat(1): non-sparse means all of it.</summary>
    public static long AllocatedBytes(string path)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b %B", path])
        {
            RedirectStandardOutput = true,
        })!;
        var output = process.StandardOutput.ReadToEnd().Trim().Split(' ');
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        return long.Parse(output[0], System.Globalization.CultureInfo.InvariantCulture) * long.Parse(output[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Runs <paramref name="program"/> (optionally as another user through <c>setpriv</c>: real and
    /// effective ids, no supplementary groups) and returns its exit code and stdout + stderr (at most 60 s).</summary>
    public static async Task<(int Code, string Output)> RunProcessAsync((uint Uid, uint Gid)? user, string program, params string[] args)
    {
        var psi = user is { } u
            ? new ProcessStartInfo("setpriv") { ArgumentList = { $"--reuid={u.Uid}", $"--regid={u.Gid}", "--clear-groups", "--", program } }
            : new ProcessStartInfo(program);
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
