using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using Google.Protobuf;
using Grpc.Core;
using PmemService.Contracts.V1;
using PmemRpcClient = PmemService.Contracts.V1.PmemService.PmemServiceClient;

namespace PmemService.FaultTests;

/// <summary>One acknowledged write: bytes [Offset, Offset+Length) of the region are <c>Content(Seed)</c>'s first Length bytes.</summary>
public sealed record Ack(int Writer, string Kind, ulong Offset, int Length, int Seed);

/// <summary>The figures of a crash loop.</summary>
public sealed record CrashLoopResult(int Kills, int AcknowledgedWrites, int PartialStreamAcks, long BytesVerified, long BytesLost,
    long BytesVerifiedViaService, TimeSpan Elapsed, int Seed, string Log)
{
    public override string ToString() =>
        $"kills={Kills} acknowledged_writes={AcknowledgedWrites} (partial stream acks {PartialStreamAcks}) bytes_verified={BytesVerified} " +
        $"bytes_lost={BytesLost} bytes_verified_via_service={BytesVerifiedViaService} elapsed={Elapsed.TotalSeconds:F1}s seed={Seed} ack_log={Log}";
}

/// <summary>
/// SIGKILL loop against the real service executable: concurrent unary (WriteRegion) and streaming
/// (StreamWriteRegion) writers log every acknowledged write; the server is SIGKILLed at a random moment,
/// restarted on the same pool, the region mapped again and the writers resumed; at the end every
/// acknowledged byte is checked in the region file and through ReadRegion after a last restart.
/// Writers never overwrite: each owns a quarter of the region and moves forward by every attempt,
/// acknowledged or not, so a write that was in flight at the kill cannot blur an acknowledged one.
/// </summary>
public static class CrashLoop
{
    public const string RegionName = "crashloop";
    public const ulong RegionSize = 256UL << 20;
    private const int Writers = 4;

    public static byte[] Content(int seed, int length)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static async Task<CrashLoopResult> RunAsync(string root, int targetKills, TimeSpan budget, int seed, Action<string> log)
    {
        var pool = Path.Combine(root, "pool");
        var socket = Path.Combine(root, "pmem.sock");
        var ackLogPath = Path.Combine(root, "acks.log");
        var acks = new ConcurrentQueue<Ack>();
        var partial = 0;
        var random = new Random(seed);
        var areas = new ulong[Writers];
        var areaSize = RegionSize / Writers;
        for (var w = 0; w < Writers; w++)
        {
            areas[w] = (ulong)w * areaSize;
        }

        var watch = Stopwatch.StartNew();
        var kills = 0;
        await using (var ackLog = new StreamWriter(ackLogPath) { AutoFlush = false })
        {
            var ackLock = new object();
            void Acked(Ack ack)
            {
                acks.Enqueue(ack);
                lock (ackLock)
                {
                    ackLog.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{ack.Writer} {ack.Kind} {ack.Offset} {ack.Length} {ack.Seed}"));
                }
            }

            while (kills < targetKills && watch.Elapsed < budget)
            {
                var service = new ServiceProcess(pool, socket);
                await using (service)
                {
                    await service.StartAsync(TimeSpan.FromSeconds(60));
                    var client = service.Client;
                    await client.MapRegionAsync(new MapRegionRequest { Name = RegionName, Size = RegionSize, CreateIfMissing = true });

                    using var stop = new CancellationTokenSource();
                    var tasks = new Task[Writers];
                    for (var w = 0; w < Writers; w++)
                    {
                        var writer = w;
                        var writerSeed = random.Next();
                        tasks[w] = Task.Run(() => writer % 2 == 0
                            ? UnaryWriterAsync(client, writer, areas, areaSize, writerSeed, Acked, stop.Token)
                            : StreamWriterAsync(client, writer, areas, areaSize, writerSeed, Acked, () => Interlocked.Increment(ref partial), stop.Token));
                    }

                    await Task.Delay(random.Next(150, 800));
                    service.Kill(); // SIGKILL
                    kills++;
                    stop.Cancel();
                    await Task.WhenAll(tasks);
                }
            }
        }

        // Verify straight from the file (no service running), then through a restarted service.
        var all = acks.ToArray();
        long verified = 0, lost = 0;
        await using (var file = new FileStream(Path.Combine(pool, RegionName), FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            foreach (var ack in all)
            {
                var stored = new byte[ack.Length];
                file.Position = (long)ack.Offset;
                file.ReadExactly(stored);
                var expected = Content(ack.Seed, ack.Length);
                verified += ack.Length;
                lost += Mismatches(expected, stored);
            }
        }

        long viaService = 0;
        await using (var service = new ServiceProcess(pool, socket))
        {
            await service.StartAsync(TimeSpan.FromSeconds(60));
            var client = service.Client;
            await client.MapRegionAsync(new MapRegionRequest { Name = RegionName, Size = RegionSize });
            foreach (var ack in all)
            {
                var read = await client.ReadRegionAsync(new ReadRegionRequest { Name = RegionName, Offset = ack.Offset, Length = (ulong)ack.Length });
                lost += Mismatches(Content(ack.Seed, ack.Length), read.Data.Span);
                viaService += ack.Length;
            }

            await client.UnmapRegionAsync(new UnmapRegionRequest { Name = RegionName });
        }

        return new CrashLoopResult(kills, all.Length, partial, verified, lost, viaService, watch.Elapsed, seed, ackLogPath);
    }

    private static long Mismatches(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual)
    {
        long n = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            if (expected[i] != actual[i])
            {
                n++;
            }
        }

        return n;
    }

    /// <summary>Moves the writer's cursor by <paramref name="length"/>; null when its area is used up.</summary>
    private static ulong? Claim(ulong[] areas, ulong areaSize, int writer, int length)
    {
        var offset = areas[writer];
        if (offset + (ulong)length > (ulong)(writer + 1) * areaSize)
        {
            return null;
        }

        areas[writer] = offset + (ulong)length;
        return offset;
    }

    private static async Task UnaryWriterAsync(PmemRpcClient client, int writer, ulong[] areas, ulong areaSize, int seed, Action<Ack> acked, CancellationToken stop)
    {
        var random = new Random(seed);
        while (!stop.IsCancellationRequested)
        {
            var length = random.Next(1, 33) * 512;
            if (Claim(areas, areaSize, writer, length) is not { } offset)
            {
                return;
            }

            var contentSeed = random.Next();
            try
            {
                var response = await client.WriteRegionAsync(new WriteRegionRequest
                {
                    Name = RegionName,
                    Offset = offset,
                    Data = UnsafeByteOperations.UnsafeWrap(Content(contentSeed, length)),
                }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: CancellationToken.None);
                if (response.Persisted && response.BytesWritten == (ulong)length)
                {
                    acked(new Ack(writer, "unary", offset, length, contentSeed));
                }
            }
            catch (Exception)
            {
                // The server died (RpcException, or a transport exception): not acknowledged.
                return;
            }
        }
    }

    private static async Task StreamWriterAsync(PmemRpcClient client, int writer, ulong[] areas, ulong areaSize, int seed, Action<Ack> acked, Action partial, CancellationToken stop)
    {
        var random = new Random(seed);
        const int chunk = 16 << 10;
        while (!stop.IsCancellationRequested)
        {
            var chunks = random.Next(1, 9);
            var length = chunks * chunk;
            if (Claim(areas, areaSize, writer, length) is not { } offset)
            {
                return;
            }

            var contentSeed = random.Next();
            var data = Content(contentSeed, length);
            try
            {
                using var call = client.StreamWriteRegion(deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: CancellationToken.None);
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = RegionName, Offset = offset, TotalLength = (ulong)length } }, CancellationToken.None);
                for (var i = 0; i < chunks; i++)
                {
                    await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = UnsafeByteOperations.UnsafeWrap(data.AsMemory(i * chunk, chunk)) }, CancellationToken.None);
                }

                await call.RequestStream.CompleteAsync();
                var response = await call;
                if (response.PersistedOffset == offset + (ulong)length && response.Crc64 == Crc64.HashToUInt64(data))
                {
                    acked(new Ack(writer, "stream", offset, length, contentSeed));
                }
            }
            catch (RpcException e)
            {
                // A stream that ended early acknowledges [offset, pmem-persisted-offset) when the trailer came.
                if (e.Trailers.GetValue("pmem-persisted-offset") is { } p && ulong.TryParse(p, CultureInfo.InvariantCulture, out var persisted) && persisted > offset)
                {
                    partial();
                    acked(new Ack(writer, "stream-partial", offset, (int)(persisted - offset), contentSeed));
                }

                return;
            }
            catch (Exception)
            {
                // The connection broke while sending (IOException, HttpRequestException, ...): not acknowledged.
                return;
            }
        }
    }
}
