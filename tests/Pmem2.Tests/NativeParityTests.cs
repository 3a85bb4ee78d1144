using System.Runtime.InteropServices;
using Pmem2.Oracle;

namespace Pmem2.Tests;

/// <summary>
/// Our codes and messages against Debian's libpmem2 1.12.1 (pmem2_errormsg), case by case. The native
/// library is required: CI installs it (.ci/run), so a missing library fails loudly.
/// </summary>
public class NativeParityTests
{
    private const uint ReadWrite = (1u << 30) | (1u << 31);

    public NativeParityTests()
    {
        Assert.True(NativePmem2.IsAvailable, "libpmem2.so.1 is not installed (apt-get install libpmem2)");
    }

    public static TheoryData<string, long, ulong, ulong, int, FileAccess> MapCases() => new()
    {
        { "whole file", 16 << 20, 0, 0, 2, FileAccess.ReadWrite },
        { "offset unaligned", 16 << 20, 1024, 0, 2, FileAccess.ReadWrite },
        { "length unaligned", 16 << 20, 0, 4097, 2, FileAccess.ReadWrite },
        { "larger than file", 16 << 20, 0, 32 << 20, 2, FileAccess.ReadWrite },
        { "offset beyond end", 16 << 20, 32 << 20, 0, 2, FileAccess.ReadWrite },
        { "offset equals size", 16 << 20, 16 << 20, 0, 2, FileAccess.ReadWrite },
        { "overflow", 16 << 20, 4096, ulong.MaxValue & ~4095UL, 2, FileAccess.ReadWrite },
        { "empty file", 0, 0, 0, 2, FileAccess.ReadWrite },
        { "3 KiB file, length 0", 3072, 0, 0, 2, FileAccess.ReadWrite },
        { "3 KiB file, length 3 KiB", 3072, 0, 3072, 2, FileAccess.ReadWrite },
        { "16 MiB - 1 file, aligned-up length", (16 << 20) - 1, 0, 16 << 20, 2, FileAccess.ReadWrite },
        { "read-only fd, shared", 1 << 20, 0, 0, 2, FileAccess.Read },
        { "granularity not set", 1 << 20, 1024, 0, -1, FileAccess.ReadWrite },
        { "cache line on non-DAX", 1 << 20, 0, 0, 1, FileAccess.ReadWrite },
        { "byte on non-DAX", 1 << 20, 0, 0, 0, FileAccess.ReadWrite },
    };

    [Theory]
    [MemberData(nameof(MapCases))]
    public void MapNewAgrees(string name, long fileSize, ulong offset, ulong length, int granularity, FileAccess access)
    {
        using var file = new TempFile(fileSize);
        using var handle = file.OpenHandle(access);
        var rc = NativeMap.TryCreate((int)handle.DangerousGetHandle(), granularity, offset, length, 0, ReadWrite, out var native);
        var nativeMessage = NativePmem2.ErrorMessage();
        ulong nativeSize = 0;
        int nativeGranularity = -1;
        using (native)
        {
            if (native is not null)
            {
                nativeSize = native.Size;
                nativeGranularity = native.Granularity;
            }
        }

        using var src = Pmem2Source.FromHandle(handle);
        var cfg = new Pmem2Config { Offset = offset, Length = length };
        if (granularity >= 0)
        {
            cfg.RequiredStoreGranularity = (Pmem2Granularity)granularity;
        }

        try
        {
            using var map = Pmem2Map.Create(cfg, src);
            Assert.True(rc == 0, $"{name}: native failed with {rc} ({nativeMessage}) but we mapped");
            Assert.Equal(nativeSize, map.Size);
            Assert.Equal(nativeGranularity, (int)map.StoreGranularity);
        }
        catch (Pmem2Exception e)
        {
            Assert.True(rc != 0, $"{name}: we failed with {e.Code} ({e.Message}) but native mapped");
            Assert.Equal(rc, (int)e.Code);
            Assert.Equal(nativeMessage, e.Message);
        }
    }

    public static TheoryData<ulong, ulong, ulong, int, int> AnonymousCases()
    {
        var data = new TheoryData<ulong, ulong, ulong, int, int>();
        foreach (var (size, offset, length) in new (ulong, ulong, ulong)[]
        {
            (0, 0, 0), (1 << 20, 0, 0), (1 << 20, 4096, 0), (1 << 20, 4096, 1 << 20), (1 << 20, 0, 1024),
            (1 << 20, 1024, 0), (1 << 20, 2 << 20, 0), (1 << 20, 0, 2 << 20), (3072, 0, 0),
        })
        {
            foreach (var sharing in new[] { 0, 1 })
            {
                foreach (var granularity in new[] { 0, 2 })
                {
                    data.Add(size, offset, length, sharing, granularity);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(AnonymousCases))]
    public void AnonymousMapsAgree(ulong size, ulong offset, ulong length, int sharing, int granularity)
    {
        Assert.Equal(0, NativePmem2.pmem2_source_from_anon(out var nativeSrc, (nuint)size));
        int rc;
        string nativeMessage;
        ulong nativeSize = 0;
        var nativeGranularity = -1;
        try
        {
            rc = NativeMap.TryCreate(nativeSrc, granularity, offset, length, sharing, ReadWrite, out var native);
            nativeMessage = NativePmem2.ErrorMessage();
            using (native)
            {
                nativeSize = native?.Size ?? 0;
                nativeGranularity = native?.Granularity ?? -1;
            }
        }
        finally
        {
            NativePmem2.pmem2_source_delete(ref nativeSrc);
        }

        using var src = Pmem2Source.FromAnonymous(size);
        try
        {
            using var map = Pmem2Map.Create(T.Config((Pmem2Granularity)granularity, offset, length, (Pmem2Sharing)sharing), src);
            Assert.Equal(0, rc);
            Assert.Equal(nativeSize, map.Size);
            Assert.Equal(nativeGranularity, (int)map.StoreGranularity);
        }
        catch (Pmem2Exception e)
        {
            Assert.Equal(rc, (int)e.Code);
            Assert.Equal(nativeMessage, e.Message);
        }
    }

    [Theory]
    [InlineData(FileAccess.ReadWrite, 0)]
    [InlineData(FileAccess.Read, 0)]
    [InlineData(FileAccess.Read, 2)]
    [InlineData(FileAccess.ReadWrite, 1)]
    public void PrivateFileMapsAgree(FileAccess access, int granularity)
    {
        using var file = new TempFile(1 << 20);
        using var handle = file.OpenHandle(access);
        var rc = NativeMap.TryCreate((int)handle.DangerousGetHandle(), granularity, 0, 0, 1, ReadWrite, out var native);
        var nativeGranularity = native?.Granularity ?? -1;
        native?.Dispose();
        Assert.Equal(0, rc);
        using var src = Pmem2Source.FromHandle(handle);
        using var map = Pmem2Map.Create(T.Config((Pmem2Granularity)granularity, sharing: Pmem2Sharing.Private), src);
        Assert.Equal(nativeGranularity, (int)map.StoreGranularity);
    }

    [Fact]
    public void ConfigSetterMessagesAgree()
    {
        Assert.Equal(0, NativePmem2.pmem2_config_new(out var cfg));
        try
        {
            var ours = new Pmem2Config();
            Check(NativePmem2.pmem2_config_set_offset(cfg, unchecked((nuint)long.MaxValue + 1)), () => ours.Offset = (ulong)long.MaxValue + 1);
            Check(NativePmem2.pmem2_config_set_sharing(cfg, 777), () => ours.Sharing = (Pmem2Sharing)777);
            Check(NativePmem2.pmem2_config_set_protection(cfg, 2), () => ours.Protection = (Pmem2Protection)2);
            Check(NativePmem2.pmem2_config_set_required_store_granularity(cfg, 999), () => ours.RequiredStoreGranularity = (Pmem2Granularity)999);
        }
        finally
        {
            NativePmem2.pmem2_config_delete(ref cfg);
        }
    }

    [Fact]
    public void SourceMessagesAgree()
    {
        using var file = new TempFile(4096);
        using (var wronly = file.OpenHandle(FileAccess.Write))
        {
            Check(NativePmem2.pmem2_source_from_fd(out _, (int)wronly.DangerousGetHandle()), () => Pmem2Source.FromHandle(wronly));
        }

        using var dir = new TempDir();
        var fd = OpenDirectory(dir.Path);
        try
        {
            Check(NativePmem2.pmem2_source_from_fd(out _, fd), () => Pmem2Source.FromBorrowedFileDescriptor(fd));
        }
        finally
        {
            CloseFd(fd);
        }

        Check(NativePmem2.pmem2_source_from_fd(out _, 1_000_000), () => Pmem2Source.FromBorrowedFileDescriptor(1_000_000));

        Assert.Equal(0, NativePmem2.pmem2_source_from_anon(out var anon, 0));
        try
        {
            using var ours = Pmem2Source.FromAnonymous(0);
            Check(NativePmem2.pmem2_source_get_fd(anon, out _), () => ours.GetFileDescriptor());
        }
        finally
        {
            NativePmem2.pmem2_source_delete(ref anon);
        }
    }

    [DllImport("libpmem2.so.1")]
    private static extern int pmem2_source_numa_node(nint src, out int node);

    [DllImport("libpmem2.so.1")]
    private static extern int pmem2_source_device_usc(nint src, out ulong usc);

    [DllImport("libpmem2.so.1")]
    private static extern int pmem2_source_device_id(nint src, nint id, ref nuint len);

    [Fact]
    public void RegionQueriesAgreeOffPmem()
    {
        // Files on ext4 (no NVDIMM region) and anonymous memory.
        using var file = new TempFile(4096);
        using var handle = file.OpenHandle();
        Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var fileSrc, (int)handle.DangerousGetHandle()));
        Assert.Equal(0, NativePmem2.pmem2_source_from_anon(out var anonSrc, 4096));
        try
        {
            using var ours = Pmem2Source.FromHandle(handle);
            using var anon = Pmem2Source.FromAnonymous(4096);
            Check(pmem2_source_numa_node(fileSrc, out _), () => ours.GetNumaNode());
            Check(pmem2_source_device_usc(fileSrc, out _), () => ours.GetDeviceUsc());
            Check(pmem2_source_numa_node(anonSrc, out _), () => anon.GetNumaNode());
            Check(pmem2_source_device_usc(anonSrc, out _), () => anon.GetDeviceUsc());
            nuint len = 0;
            Check(pmem2_source_device_id(anonSrc, 0, ref len), () => anon.GetDeviceId());
            Assert.Equal((int)Pmem2ErrorCode.NoSupp, pmem2_source_device_id(fileSrc, 0, ref len));
            Assert.Equal(Pmem2ErrorCode.NoSupp, Assert.Throws<Pmem2Exception>(() => ours.GetDeviceId()).Code);
        }
        finally
        {
            NativePmem2.pmem2_source_delete(ref fileSrc);
            NativePmem2.pmem2_source_delete(ref anonSrc);
        }
    }

    [Fact]
    public void DeepFlushRangeCodeAgrees()
    {
        using var file = new TempFile(1 << 20);
        using var handle = file.OpenHandle();
        Assert.Equal(0, NativeMap.TryCreate((int)handle.DangerousGetHandle(), 2, 0, 0, 0, ReadWrite, out var native));
        using (native)
        {
            var rc = NativePmem2.pmem2_deep_flush(native!.Handle, native.Address + 1, native.Size);
            Assert.Equal((int)Pmem2ErrorCode.DeepFlushRange, rc);
            Assert.StartsWith("requested deep flush rage ptr", NativePmem2.ErrorMessage());
        }
    }

    private static void Check(int nativeRc, Action ours)
    {
        var nativeMessage = NativePmem2.ErrorMessage();
        Assert.NotEqual(0, nativeRc);
        var e = Assert.Throws<Pmem2Exception>(ours);
        Assert.Equal(nativeRc, (int)e.Code);
        Assert.Equal(nativeMessage, e.Message);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "open")]
    private static extern int OpenRaw([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "close")]
    private static extern int CloseRaw(int fd);

    private static int OpenDirectory(string path)
    {
        var fd = OpenRaw(path, 0);
        Assert.True(fd >= 0);
        return fd;
    }

    private static void CloseFd(int fd) => CloseRaw(fd);
}
