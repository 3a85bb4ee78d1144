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
