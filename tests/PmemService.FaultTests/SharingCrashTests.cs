using System.Buffers.Binary;
using Grpc.Core;
using PmemService.Contracts.V1;
using Xunit.Abstractions;

namespace PmemService.FaultTests;

/// <summary>
/// Issue 14 under SIGKILL of the real service process (pool on ext4 under /tmp, PAGE: msync): every
/// acknowledged FetchAdd / CompareAndSwap is in the region after a restart, and an upload record is
/// never ahead of the bytes.
/// </summary>
public sealed class SharingCrashTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AcknowledgedAtomicsSurviveSigkillOfTheService()
    {
        var root = TestSupport.NewTempDir("/tmp", "pmemcas");
        var pool = Path.Combine(root, "pool");
        var socket = Path.Combine(root, "pmem.sock");
        const ulong Counter = 4096;
        try
        {
            long maxAcked = 0, attempted = 0;
            for (var round = 0; round < 3; round++)
            {
                await using var service = new ServiceProcess(pool, socket);
                await service.StartAsync(TimeSpan.FromSeconds(60));
                var client = service.Client;
                await client.MapRegionAsync(new MapRegionRequest { Name = "ctr", Size = 1 << 20, CreateIfMissing = true });

                // After the previous kill: the value is at least every acknowledged result, at most every attempt.
                var now = (await client.FetchAddAsync(new FetchAddRequest { Name = "ctr", Offset = Counter, Delta = 0 })).Value;
                output.WriteLine($"round {round}: value {now}, max acknowledged {maxAcked}, attempted {attempted}");
                Assert.InRange(now, maxAcked, attempted);
                maxAcked = now;
                attempted = now;

                using var stop = new CancellationTokenSource();
                var workers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
                {
                    for (var i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
                    {
                        Interlocked.Increment(ref attempted);
                        try
                        {
                            long value;
                            if (w % 2 == 0)
                            {
                                value = (await client.FetchAddAsync(new FetchAddRequest { Name = "ctr", Offset = Counter, Delta = 1 })).Value;
                            }
                            else
                            {
                                var seen = (await client.FetchAddAsync(new FetchAddRequest { Name = "ctr", Offset = Counter, Delta = 0 })).Value;
                                var cas = await client.CompareAndSwapAsync(new CompareAndSwapRequest { Name = "ctr", Offset = Counter, Expected = seen, Desired = seen + 1 });
                                if (!cas.Swapped)
                                {
                                    Interlocked.Decrement(ref attempted);
                                    continue;
                                }

                                value = seen + 1;
                            }

                            InterlockedMax(ref maxAcked, value);
                        }
                        catch (RpcException)
                        {
                            return; // the service was killed: this call may or may not have happened (counted in attempted)
                        }
                    }
                })).ToArray();

                await Task.Delay(TimeSpan.FromMilliseconds(1500));
                service.Kill(); // SIGKILL while calls are in flight
                stop.Cancel();
                await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
                Assert.True(maxAcked > now, "no call was acknowledged before the kill");
            }

            // The region file itself holds at least the last acknowledged value.
            var bytes = new byte[8];
            using (var file = File.OpenHandle(Path.Combine(pool, "ctr")))
            {
                RandomAccess.Read(file, bytes, (long)Counter);
            }

            Assert.InRange(BinaryPrimitives.ReadInt64LittleEndian(bytes), maxAcked, attempted);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task AnUploadRecordIsNeverAheadOfTheBytesAndTheUploadResumesAfterTheServiceIsKilled()
    {
        var root = TestSupport.NewTempDir("/tmp", "pmemupl");
        var pool = Path.Combine(root, "pool");
        var socket = Path.Combine(root, "pmem.sock");
        var env = new Dictionary<string, string> { ["PmemService__UploadCheckpointBytes"] = (1 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture) };
        const int Size = 48 << 20;
        var content = new byte[Size];
        new Random(14).NextBytes(content);
        try
        {
            await using (var service = new ServiceProcess(pool, socket, environment: env))
            {
                await service.StartAsync(TimeSpan.FromSeconds(60));
                var client = service.Client;
                await client.MapRegionAsync(new MapRegionRequest { Name = "up", Size = 64 << 20, CreateIfMissing = true });
                using var call = client.StreamWriteRegion();
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = "up", Offset = 0, UploadId = "u1" } });
                var sent = 0;
                for (; sent < Size; sent += 64 << 10)
                {
                    await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = Google.Protobuf.ByteString.CopyFrom(content, sent, 64 << 10) });
                    if (sent == 8 << 20)
                    {
                        break;
                    }
                }

                // Wait (bounded) until the server recorded a checkpoint, then SIGKILL it mid-stream.
                for (var i = 0; i < 200; i++)
                {
                    var record = (await client.GetUploadAsync(new GetUploadRequest { Name = "up", UploadId = "u1" })).Upload;
                    if (record.PersistedOffset >= 4 << 20)
                    {
                        break;
                    }

                    await Task.Delay(25);
                }

                service.Kill();
            }

            ulong resumeAt;
            await using (var service = new ServiceProcess(pool, socket, environment: env))
            {
                await service.StartAsync(TimeSpan.FromSeconds(60));
                var client = service.Client;
                var record = (await client.GetUploadAsync(new GetUploadRequest { Name = "up", UploadId = "u1" })).Upload;
                output.WriteLine($"after the kill: start {record.StartOffset}, persisted {record.PersistedOffset}");
                Assert.InRange(record.PersistedOffset, 1UL << 20, (8UL << 20) + (64 << 10));
                resumeAt = record.PersistedOffset;

                // Never ahead of the bytes: the recorded prefix is in the file.
                var prefix = new byte[(int)resumeAt];
                using (var file = File.OpenHandle(Path.Combine(pool, "up")))
                {
                    RandomAccess.Read(file, prefix, 0);
                }

                Assert.True(prefix.AsSpan().SequenceEqual(content.AsSpan(0, (int)resumeAt)), "the record is ahead of the persisted bytes");

                await client.MapRegionAsync(new MapRegionRequest { Name = "up" });
                using var call = client.StreamWriteRegion();
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = "up", Offset = resumeAt, UploadId = "u1", TotalLength = Size - resumeAt } });
                for (var at = (int)resumeAt; at < Size; at += 1 << 20)
                {
                    await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = Google.Protobuf.ByteString.CopyFrom(content, at, Math.Min(1 << 20, Size - at)) });
                }

                await call.RequestStream.CompleteAsync();
                var response = await call;
                Assert.Equal((0UL, (ulong)Size), (response.Upload.StartOffset, response.Upload.PersistedOffset));
                await service.StopAsync(TimeSpan.FromSeconds(60));
            }

            var whole = new byte[Size];
            using (var file = File.OpenHandle(Path.Combine(pool, "up")))
            {
                RandomAccess.Read(file, whole, 0);
            }

            Assert.Equal(System.IO.Hashing.Crc64.HashToUInt64(content), System.IO.Hashing.Crc64.HashToUInt64(whole));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var found = Interlocked.CompareExchange(ref target, value, current);
            if (found == current)
            {
                return;
            }

            current = found;
        }
    }
}
