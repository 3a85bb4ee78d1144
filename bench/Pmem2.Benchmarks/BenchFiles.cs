using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Oracle;

namespace Pmem2.Benchmarks;

/// <summary>Where the mapped file lives.</summary>
public enum Medium
{
    /// <summary>tmpfs (/dev/shm): msync has nothing to write back.</summary>
    Shm,
    /// <summary>ext4 on the VM's disk (/var/tmp): msync writes dirty pages back.</summary>
    Disk,
}

/// <summary>Effective granularity of both maps.</summary>
public enum Gran
{
    /// <summary>The true granularity of these non-DAX files: msync after every copy.</summary>
    Page,
    /// <summary>PMEM2_FORCE_GRANULARITY=CACHE_LINE for both libraries: CPU flush paths, no msync.</summary>
    CacheLine,
}

/// <summary>
/// One file mapped twice, by our Pmem2 and by native libpmem2, with the same requested and forced
/// granularity; plus a 64-byte aligned source buffer. Both mappings are pre-faulted.
/// </summary>
internal sealed class DualMap : IDisposable
{
    private readonly SafeFileHandle _fd;
    private readonly nint _srcAlloc;

    public DualMap(Medium medium, Gran gran, long fileSize)
    {
        if (!NativePmem2.IsAvailable)
        {
            throw new InvalidOperationException("libpmem2.so.1 is not installed (apt-get install libpmem2).");
        }

        var dir = medium == Medium.Shm ? "/dev/shm" : "/var/tmp";
        Path = System.IO.Path.Combine(dir, $"pmem2-bench-{Environment.ProcessId}-{Guid.NewGuid():N}.dat");
        _fd = File.OpenHandle(Path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite);
        RandomAccess.SetLength(_fd, fileSize);

        // Read on every map_new by both libraries: both see the same forced granularity.
        NativePmem2.SetNativeEnvironment("PMEM2_FORCE_GRANULARITY", gran == Gran.CacheLine ? "CACHE_LINE" : null);
        try
        {
            using var source = Pmem2Source.Open(Path);
            Ours = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page }, source);
            int rc = NativeMap.TryCreate((int)_fd.DangerousGetHandle(), 2 /* PAGE */, 0, 0, 0 /* SHARED */,
                (1u << 30) | (1u << 31) /* READ|WRITE */, out var native);
            if (rc != 0 || native is null)
            {
                throw new InvalidOperationException($"native pmem2_map_new failed: {rc} {NativePmem2.ErrorMessage()}");
            }

            Native = native;
        }
        finally
        {
            NativePmem2.SetNativeEnvironment("PMEM2_FORCE_GRANULARITY", null);
        }

        var expected = gran == Gran.CacheLine ? Pmem2Granularity.CacheLine : Pmem2Granularity.Page;
        if (Ours.StoreGranularity != expected || Native.Granularity != (int)expected)
        {
            throw new InvalidOperationException($"granularity mismatch: ours {Ours.StoreGranularity}, native {Native.Granularity}, wanted {expected}");
        }

        // Pre-fault every page of both mappings (and allocate the file's blocks).
        Ours.GetSpan(0, checked((int)fileSize)).Fill(0x11);
        Ours.Persist(0, (ulong)fileSize);
        _ = Native.Memset(Native.Address, 0x22, (nuint)fileSize, 0);

        _srcAlloc = Marshal.AllocHGlobal((nint)fileSize + 64);
        Source = (_srcAlloc + 63) & ~(nint)63;
        var rnd = new Random(42);
        var chunk = new byte[65536];
        for (long off = 0; off < fileSize; off += chunk.Length)
        {
            rnd.NextBytes(chunk);
            Marshal.Copy(chunk, 0, Source + (nint)off, (int)Math.Min(chunk.Length, fileSize - off));
        }
    }

    public string Path { get; }

    public Pmem2Map Ours { get; }

    public NativeMap Native { get; }

    public nint Source { get; }

    public void Dispose()
    {
        Ours.Dispose();
        Native.Dispose();
        _fd.Dispose();
        Marshal.FreeHGlobal(_srcAlloc);
        File.Delete(Path);
    }
}
