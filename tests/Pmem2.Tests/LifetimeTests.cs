using Pmem2.Internal;

namespace Pmem2.Tests;

/// <summary>Disposal: unmapped exactly once, no use after unmap, in-flight calls keep the mapping.</summary>
public class LifetimeTests
{
    private static bool IsMapped(nint address)
    {
        var header = ((ulong)address).ToString("x") + "-";
        return File.ReadLines("/proc/self/maps").Any(l => l.StartsWith(header, StringComparison.Ordinal));
    }

    [Fact]
    public void DisposeUnmapsOnceAndLaterCallsThrow()
    {
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        var map = Pmem2Map.Create(T.Config(), src);
        var address = map.Address;
        Assert.True(IsMapped(address));
        map.Dispose();
        Assert.True(map.IsDisposed);
        Assert.True(map.Handle.IsClosed);
        Assert.False(IsMapped(address));
        map.Dispose(); // idempotent

        Assert.Throws<ObjectDisposedException>(() => map.GetSpan());
        Assert.Throws<ObjectDisposedException>(() => map.Read(0, new byte[1]));
        Assert.Throws<ObjectDisposedException>(() => map.Memcpy(0, "x"u8));
        Assert.Throws<ObjectDisposedException>(() => map.Memmove(0, 1, 1));
        Assert.Throws<ObjectDisposedException>(() => map.Memset(0, 1, 1));
        Assert.Throws<ObjectDisposedException>(() => map.Persist(0, 1));
        Assert.Throws<ObjectDisposedException>(() => map.Flush(0, 1));
        Assert.Throws<ObjectDisposedException>(() => map.Drain());
        Assert.Throws<ObjectDisposedException>(() => map.DeepFlush(0, 1));
        Assert.Throws<ObjectDisposedException>(() => map.CopyNonTemporalDeferred(0, "x"u8));
        Assert.Throws<ObjectDisposedException>(() => map.CompleteDeferred(0, 1));
        Assert.Equal(1UL << 20, map.Size); // getters still answer, like pmem2_map_get_*
    }

    [Fact]
    public void DisposeWhileAReferenceIsHeldDefersTheUnmap()
    {
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        var map = Pmem2Map.Create(T.Config(), src);
        var address = map.Address;
        var added = false;
        map.Handle.DangerousAddRef(ref added);
        Assert.True(added);
        map.Dispose();
        Assert.True(map.IsDisposed);
        Assert.True(IsMapped(address), "an in-flight reference must keep the mapping alive");
        System.Runtime.InteropServices.Marshal.WriteByte(address, 42); // still valid memory

        Assert.Throws<ObjectDisposedException>(() => map.Memset(0, 0, 1));
        map.Handle.DangerousRelease();
        Assert.False(IsMapped(address));
    }

    [Fact]
    public async Task ConcurrentDisposeNeverCrashesAnInFlightWriter()
    {
        using var file = new TempFile(4 << 20);
        using var src = file.OpenSource();
        var payload = new byte[256 << 10];
        for (var round = 0; round < 5; round++)
        {
            var map = Pmem2Map.Create(T.Config(), src);
            using var started = new ManualResetEventSlim();
            var operations = 0;
            var writer = Task.Run(() =>
            {
                try
                {
                    for (var i = 0; i < 1_000_000; i++)
                    {
                        map.Memcpy((ulong)(i % 16) * (ulong)payload.Length, payload, Pmem2MemFlags.NoFlush);
                        map.Read(0, payload.AsSpan(0, 64));
                        operations++;
                        started.Set();
                    }

                    return false;
                }
                catch (ObjectDisposedException)
                {
                    return true;
                }
            });

            Assert.True(started.Wait(TimeSpan.FromSeconds(30)));
            map.Dispose();
            var stopped = await writer.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(stopped, "the writer should stop with ObjectDisposedException");
            Assert.True(operations > 0);
            Assert.False(IsMapped(map.Address));
        }
    }

    [Fact]
    public void DisposingTheHandleDirectlyAlsoEndsTheMap()
    {
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(), src);
        map.Handle.Dispose();
        Assert.True(map.IsDisposed);
        Assert.False(IsMapped(map.Address));
        Assert.Throws<ObjectDisposedException>(() => map.GetSpan());
        Assert.Throws<ObjectDisposedException>(() => map.Persist(0, 1));
    }

    [Fact]
    public async Task ConcurrentCreatePersistDisposeKeepsTheRegistryConsistent()
    {
        using var file = new TempFile(256 << 10);
        using var src = file.OpenSource();
        var before = MapRegistry.Count;
        var workers = Enumerable.Range(0, 4).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < 60; i++)
            {
                using var map = Pmem2Map.Create(T.Config(offset: (ulong)(w * 4096), length: 64 << 10), src);
                map.Memset((ulong)(i % 16) * 4096, (byte)i, 4096, Pmem2MemFlags.NoFlush);
                map.Persist((ulong)(i % 16) * 4096, 4096);
                Assert.True(MapRegistry.Overlaps((nuint)map.Address, (nuint)map.Size));
            }
        })).ToArray();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(MapRegistry.Count <= before + 8, "maps of this test leaked into the registry"); // other tests run in parallel
    }

    [Fact]
    public void RegistryTracksLiveMapsOnly()
    {
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        var map = Pmem2Map.Create(T.Config(), src);
        Assert.True(MapRegistry.Overlaps((nuint)map.Address, 1));
        Assert.True(MapRegistry.Overlaps((nuint)map.Address + (1 << 20) - 1, 1));
        map.Dispose();
        Assert.False(MapRegistry.Overlaps((nuint)map.Address, 1 << 20));
    }

    [Fact]
    public void RegistryRefusesOverlaps()
    {
        var owner = new object();
        const nuint start = 0xFFFF;
        MapRegistry.Register(start, 0xFF, owner);
        try
        {
            var e = T.Fails(Pmem2ErrorCode.MapExists, () => MapRegistry.Register(start, 0xFF, new object()));
            T.Fails(Pmem2ErrorCode.MapExists, () => MapRegistry.Register(0xFFF0, 0x10, new object()));
            T.Fails(Pmem2ErrorCode.MapExists, () => MapRegistry.Register(start + 1, 0xFF, new object()));
            MapRegistry.Register(start + 0xFF, 1, owner);
            Assert.True(MapRegistry.Unregister(start + 0xFF, owner));
            Assert.False(MapRegistry.Unregister(start, new object()));
            Assert.Equal("Provided mapping(addr 0xffff len 255) is already registered by libpmem2", e.Message);
        }
        finally
        {
            Assert.True(MapRegistry.Unregister(start, owner));
        }
    }
}
