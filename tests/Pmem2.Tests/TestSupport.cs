using Microsoft.Win32.SafeHandles;
using Pmem2.Internal;
using Pmem2.Oracle;

namespace Pmem2.Tests;

/// <summary>A (sparse) temporary file under Path.GetTempPath(), deleted on dispose.</summary>
internal sealed class TempFile : IDisposable
{
    public TempFile(long size, string? prefix = null, string? directory = null)
    {
        Path = System.IO.Path.Combine(directory ?? System.IO.Path.GetTempPath(), $"{prefix ?? "pmem2-test"}-{Guid.NewGuid():N}");
        using var fs = new FileStream(Path, FileMode.CreateNew, FileAccess.ReadWrite);
        fs.SetLength(size);
    }

    public string Path { get; }

    public SafeFileHandle OpenHandle(FileAccess access = FileAccess.ReadWrite) =>
        File.OpenHandle(Path, FileMode.Open, access, FileShare.ReadWrite | FileShare.Delete);

    public Pmem2Source OpenSource(FileAccess access = FileAccess.ReadWrite) => Pmem2Source.Open(Path, access);

    public void Dispose()
    {
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A temporary directory, deleted recursively on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = Directory.CreateTempSubdirectory("pmem2-test-").FullName;
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class T
{
    public const ulong KiB = 1 << 10;
    public const ulong MiB = 1 << 20;

    public static Pmem2Config Config(Pmem2Granularity granularity = Pmem2Granularity.Page, ulong offset = 0, ulong length = 0,
        Pmem2Sharing sharing = Pmem2Sharing.Shared) =>
        new() { RequiredStoreGranularity = granularity, Offset = offset, Length = length, Sharing = sharing };

    public static Pmem2Exception Fails(Pmem2ErrorCode code, Action action)
    {
        var e = Assert.Throws<Pmem2Exception>(action);
        Assert.Equal(code, e.Code);
        return e;
    }

    /// <summary>Fakes the MAP_SYNC outcome and the eADR sysfs for the current async flow; restores on dispose.</summary>
    public static IDisposable Platform(bool mapSync, bool eadr)
    {
        var dir = new TempDir();
        var real = Directory.CreateDirectory(System.IO.Path.Combine(dir.Path, "ndbus0-region0"));
        File.WriteAllText(System.IO.Path.Combine(real.FullName, "persistence_domain"), eadr ? "cpu_cache\n" : "memory_controller\n");
        var bus = Directory.CreateDirectory(System.IO.Path.Combine(dir.Path, "devices"));
        File.CreateSymbolicLink(System.IO.Path.Combine(bus.FullName, "region0"), real.FullName);

        var previousSync = GranularityPolicy.MapSyncOverride;
        var previousPath = GranularityPolicy.NdBusDevicesPath;
        GranularityPolicy.MapSyncOverride = mapSync;
        GranularityPolicy.NdBusDevicesPath = bus.FullName;
        return new Restore(() =>
        {
            GranularityPolicy.MapSyncOverride = previousSync;
            GranularityPolicy.NdBusDevicesPath = previousPath;
            dir.Dispose();
        });
    }

    /// <summary>Sets an environment variable in the managed and native environments; restores on dispose.</summary>
    public static IDisposable Env(string name, string? value)
    {
        var previous = Environment.GetEnvironmentVariable(name);
        NativePmem2.SetNativeEnvironment(name, value);
        return new Restore(() => NativePmem2.SetNativeEnvironment(name, previous));
    }

    private sealed class Restore(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}

/// <summary>Tests that change process environment variables read by the library run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EnvironmentCollection
{
    public const string Name = "Environment variables";
}

/// <summary>Persisted 4 KiB writes through a PAGE mapping, and what they send to the block layer.</summary>
internal static class PersistedPages
{
    /// <summary>
    /// 32 persisted 4 KiB writes (memcpy + msync of one page each, spread over the first 16 MiB); asserts that
    /// each sent at most <paramref name="maxBytesPerPersist"/> to the block layer (write_bytes of
    /// /proc/thread-self/io, counted a whole folio at a time) and that the data reads back.
    /// </summary>
    public static void AssertWriteBackPerPersistAtMost(Pmem2Map map, double maxBytesPerPersist, int seed)
    {
        var page = new byte[4096];
        new Random(seed).NextBytes(page);
        const int Writes = 32;
        var before = PmemTests.Shared.FileProbes.ThreadWriteBytes();
        for (var i = 0; i < Writes; i++)
        {
            map.Memcpy((ulong)(i * 97 % 4096) * 4096, page); // memcpy + msync of one page
        }

        var perWrite = (PmemTests.Shared.FileProbes.ThreadWriteBytes() - before) / (double)Writes;
        Assert.True(perWrite <= maxBytesPerPersist, $"{perWrite.ToString("0", System.Globalization.CultureInfo.InvariantCulture)} bytes written back per 4 KiB persist");
        var back = new byte[4096];
        map.Read(97UL * 4096, back);
        Assert.Equal(page, back);
    }
}
