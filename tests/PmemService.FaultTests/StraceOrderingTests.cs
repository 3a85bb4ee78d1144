using System.IO.Hashing;
using Google.Protobuf;
using PmemService.Contracts.V1;
using Xunit.Abstractions;

namespace PmemService.FaultTests;

/// <summary>A fact that needs strace: skipped (with the reason) only when strace is absent outside CI.</summary>
public sealed class StraceFactAttribute : FactAttribute
{
    public StraceFactAttribute()
    {
        if (!File.Exists(StraceOrderingTests.Strace) && !PmemTests.Shared.FaultFs.InCi)
        {
            Skip = "strace is not installed and CI is not set (.ci/run installs it)";
        }
    }
}

/// <summary>
/// Persist-before-ack, checked from outside the process: the real service exe runs under strace at PAGE
/// granularity (pool on ext4 under /tmp), a client makes one write at a time (unary and streams), and for
/// every acknowledged write the trace must show an msync covering its bytes that returned 0 after the
/// previous response was sent and before the send carrying this write's response. The response is
/// found by its exact gRPC message bytes (unique lengths per write). A deferred write (no persist) is
/// the negative control: the same check must flag it, so the checker can fail.
/// </summary>
public sealed class StraceOrderingTests(ITestOutputHelper output)
{
    public const string Strace = "/usr/bin/strace";
    private const string Region = "traced";

    private sealed record Step(string Kind, ulong Offset, byte[] Data, byte[] ResponseMessage, bool Acknowledged);

    [StraceFact]
    public async Task EveryAcknowledgedWriteHasACoveringMsyncBeforeItsResponseLeaves()
    {
        var root = TestSupport.NewTempDir("/tmp", "pmemstrace");
        var trace = Path.Combine(root, "trace.txt");
        try
        {
            var steps = new List<Step>();
            await using (var service = new ServiceProcess(Path.Combine(root, "pool"), Path.Combine(root, "pmem.sock"),
                wrapper: [Strace, "-f", "--seccomp-bpf", "-tt", "-e", "trace=msync,sendmsg,sendto,write,writev", "-e", "signal=none", "-s", "4096", "-xx", "-o", trace]))
            {
                await service.StartAsync(TimeSpan.FromSeconds(180));
                var client = service.Client;
                var map = await client.MapRegionAsync(new MapRegionRequest { Name = Region, Size = 1 << 20, CreateIfMissing = true, RequiredGranularity = Granularity.Page });
                Assert.Equal(Granularity.Page, map.Region.EffectiveGranularity);
                var baseAddress = MappingAddress(service.ServicePid, Path.Combine(root, "pool", Region));

                const int writes = 24;
                for (var i = 0; i < writes; i++)
                {
                    // Slot i is [i*8 KiB, (i+1)*8 KiB): no msync of one write can cover another's bytes.
                    var offset = (ulong)(i * 8192 + (i * 131 % 2048));
                    var data = TestSupport.Pattern(1000 + (37 * i), 100 + i);
                    if (i == 11)
                    {
                        // Negative control: deferred, so no msync precedes its response.
                        var deferred = await client.WriteRegionAsync(new WriteRegionRequest { Name = Region, Offset = offset, Data = ByteString.CopyFrom(data), DeferPersist = true });
                        Assert.False(deferred.Persisted);
                        steps.Add(new Step("deferred", offset, data, deferred.ToByteArray(), Acknowledged: false));
                    }
                    else if (i % 3 == 2)
                    {
                        using var call = client.StreamWriteRegion();
                        await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = Region, Offset = offset, TotalLength = (ulong)data.Length } });
                        await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(data, 0, 512) });
                        await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(data, 512, data.Length - 512) });
                        await call.RequestStream.CompleteAsync();
                        var response = await call;
                        Assert.Equal(Crc64.HashToUInt64(data), response.Crc64);
                        steps.Add(new Step("stream", offset, data, response.ToByteArray(), Acknowledged: true));
                    }
                    else
                    {
                        var response = await client.WriteRegionAsync(new WriteRegionRequest { Name = Region, Offset = offset, Data = ByteString.CopyFrom(data) });
                        Assert.True(response.Persisted);
                        steps.Add(new Step("unary", offset, data, response.ToByteArray(), Acknowledged: true));
                    }
                }

                Assert.Equal(0, await service.StopAsync(TimeSpan.FromSeconds(60)));

                var parsed = StraceOrdering.Parse(trace);
                output.WriteLine($"trace: {new FileInfo(trace).Length} bytes, {parsed.Msyncs.Count} msyncs returned 0, {parsed.Sends.Count} sends; mapping at 0x{baseAddress:x}");
                var previous = 0;
                var covered = 0;
                var uncovered = new List<string>();
                foreach (var step in steps)
                {
                    // The gRPC length-prefixed message, exactly as the response carries it.
                    var pattern = new byte[5 + step.ResponseMessage.Length];
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(pattern.AsSpan(1), (uint)step.ResponseMessage.Length);
                    step.ResponseMessage.CopyTo(pattern, 5);
                    var send = parsed.FindSend(pattern, previous);
                    Assert.True(send is not null, $"{step.Kind} write at {step.Offset}: its response was not found in the trace after line {previous} ({trace})");
                    var msync = parsed.FindCovering(baseAddress + step.Offset, (ulong)step.Data.Length, previous, send.Line);
                    var line = $"{step.Kind} [{step.Offset}, +{step.Data.Length}): response {send.Syscall} at line {send.Line}, covering msync " +
                        (msync is null ? "NONE" : $"0x{msync.Address:x}+{msync.Length} returned at line {msync.Line}");
                    output.WriteLine(line);
                    if (msync is null)
                    {
                        uncovered.Add(line);
                    }
                    else
                    {
                        covered++;
                    }

                    previous = send.Line;
                }

                // Every acknowledged write is covered; the deferred control is not (the check can fail).
                Assert.Equal(steps.Where(s => !s.Acknowledged).Select(s => s.Kind), uncovered.Select(u => u.Split(' ')[0]));
                Assert.Equal(steps.Count(s => s.Acknowledged), covered);
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>Start of the service's mapping of <paramref name="file"/>, from /proc/PID/maps.</summary>
    private static ulong MappingAddress(int pid, string file)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/maps"))
        {
            if (line.EndsWith(" " + file, StringComparison.Ordinal))
            {
                return ulong.Parse(line.AsSpan(0, line.IndexOf('-', StringComparison.Ordinal)), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"no mapping of {file} in /proc/{pid}/maps");
    }
}
