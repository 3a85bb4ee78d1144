using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Pmem2.Internal.Interop;
using Pmem2.Oracle;

namespace Pmem2.Tests;

/// <summary>
/// Codes and pmem2_errormsg texts of the reservation calls, pmem2_map_from_existing and the mcsafe
/// length check against Debian's libpmem2 1.12.1 (the cases of the oracle's MISMATCHES.md). Pointers
/// are compared only where both sides print the same one; the delete message prints libpmem2's struct
/// address there, so it is masked.
/// </summary>
public partial class ReservationParityTests
{
    private const ulong MiB = T.MiB;
    private const ulong Page = 4096;

    public ReservationParityTests()
    {
        Assert.True(NativePmem2.IsAvailable, "libpmem2.so.1 is not installed (apt-get install libpmem2)");
    }

    private static (int Code, string Message) Native(int rc) => (rc, rc == 0 ? string.Empty : NativePmem2.ErrorMessage());

    private static (int Code, string Message) Ours(Action action)
    {
        try
        {
            action();
            return (0, string.Empty);
        }
        catch (Pmem2Exception e)
        {
            return ((int)e.Code, e.Message);
        }
    }

    [GeneratedRegex("0x[0-9a-f]+")]
    private static partial Regex PointerPattern();

    private static string Mask(string message) => PointerPattern().Replace(message, "0x?");

    [Fact]
    public void ReservationNewMessagesMatch()
    {
        // A free, 2 MiB-aligned address: reserved and released again.
        using (var probe = Pmem2VmReservation.Create(0, 8 * MiB))
        {
            var free = probe.Address;
            probe.Dispose();
            foreach (var (address, size) in new (nint, ulong)[] { (0, 1), (0, 4095), (free, 4097), (free + 1, 8 * MiB), (free + 4095, 4096), (0, 1UL << 62) })
            {
                var native = Native(NativeRsv.pmem2_vm_reservation_new(out var n, address, (nuint)size));
                Assert.Equal(0, n);
                var ours = Ours(() => Pmem2VmReservation.Create(address, size).Dispose());
                Assert.Equal(native, ours);
            }

            Assert.Equal(((int)Pmem2ErrorCode.AddressUnaligned, $"address 0x{free + 1:x} is not a multiple of 0x1000"), Ours(() => Pmem2VmReservation.Create(free + 1, 4096)));
            Assert.Equal(((int)Pmem2ErrorCode.LengthUnaligned, "reservation size 4095 is not a multiple of 4096"), Ours(() => Pmem2VmReservation.Create(0, 4095)));
        }

        // Size 0 is accepted by both; both deletes fail with munmap's EINVAL and keep the object.
        Assert.Equal(0, NativeRsv.pmem2_vm_reservation_new(out var zero, 0, 0));
        Assert.Equal(0UL, (ulong)NativeRsv.pmem2_vm_reservation_get_size(zero));
        var nativeDelete = Native(NativeRsv.pmem2_vm_reservation_delete(ref zero));
        Assert.NotEqual(0, zero);
        var ours0 = Pmem2VmReservation.Create(0, 0);
        Assert.Equal(0UL, ours0.Size);
        Assert.Equal((-22, "munmap: Invalid argument"), nativeDelete);
        Assert.Equal(nativeDelete, Ours(ours0.Dispose));
        Assert.Equal(nativeDelete, Ours(ours0.Dispose));

        // Growing it makes native's deletable (ours: ZeroSizeReservationTests, which runs alone because ours
        // holds no address space and a parallel test's mmap could take the range it would grow into).
        Assert.Equal(0, NativeRsv.pmem2_vm_reservation_extend(zero, (nuint)Page));
        Assert.Equal(0, NativeRsv.pmem2_vm_reservation_delete(ref zero));
    }

    [Fact]
    public void ExtendShrinkAndDeleteMessagesMatch()
    {
        using var file = new TempFile(16 * (long)MiB);
        using var handle = file.OpenHandle();
        Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var nsrc, (int)handle.DangerousGetHandle()));
        Assert.Equal(0, NativeRsv.pmem2_vm_reservation_new(out var nrsv, 0, (nuint)(8 * MiB)));
        var orsv = Pmem2VmReservation.Create(0, 8 * MiB);
        var nmap = (nint)0;
        try
        {
            foreach (var size in new ulong[] { 1, 4095, Page + 1, 1UL << 62 })
            {
                Assert.Equal(Native(NativeRsv.pmem2_vm_reservation_extend(nrsv, (nuint)size)), Ours(() => orsv.Extend(size)));
            }

            Assert.Equal(((int)Pmem2ErrorCode.LengthUnaligned, "reservation extension size 1 is not a multiple of 4096"), Ours(() => orsv.Extend(1)));
            Assert.Equal((-12, "mmap MAP_ANONYMOUS: Cannot allocate memory"), Ours(() => orsv.Extend(1UL << 62)));
            Assert.Equal(8 * MiB, orsv.Size);

            (ulong Offset, ulong Size)[] shrinks =
            [
                (1024, Page), (0, 1024), (8 * MiB, Page), (0, 0), (0, 16 * MiB), (4 * MiB, 8 * MiB), (8 * MiB - Page, 8 * MiB),
                (Page, ulong.MaxValue - Page + 1), (Page, Page), (0, 8 * MiB),
            ];
            foreach (var (offset, size) in shrinks)
            {
                var native = Native(NativeRsv.pmem2_vm_reservation_shrink(nrsv, (nuint)offset, (nuint)size));
                Assert.Equal(native, Ours(() => orsv.Shrink(offset, size)));
            }

            Assert.Equal(((int)Pmem2ErrorCode.OffsetUnaligned, "reservation shrink offset 1024 is not a multiple of 4096"), Ours(() => orsv.Shrink(1024, Page)));
            Assert.Equal(((int)Pmem2ErrorCode.LengthUnaligned, "reservation shrink size 1024 is not a multiple of 4096"), Ours(() => orsv.Shrink(0, 1024)));
            Assert.Equal(((int)Pmem2ErrorCode.LengthOutOfRange, "reservation shrink size 0 cannot be zero"), Ours(() => orsv.Shrink(0, 0)));
            Assert.Equal(((int)Pmem2ErrorCode.LengthOutOfRange, "reservation shrink size 16777216 stands out of reservation range"), Ours(() => orsv.Shrink(0, 16 * MiB)));
            Assert.Equal(((int)Pmem2ErrorCode.NoSupp, "shrinking whole reservation is not supported"), Ours(() => orsv.Shrink(0, 8 * MiB)));
            // offset + size wraps around: libpmem2 lets it through to the "middle" check.
            Assert.Equal(((int)Pmem2ErrorCode.NoSupp, "shrinking reservation from the middle is not supported"), Ours(() => orsv.Shrink(Page, ulong.MaxValue - Page + 1)));

            // A 4 MiB map at offset 0: shrinking over it and deleting the reservation are refused.
            Assert.Equal(0, NativePmem2.pmem2_config_new(out var cfg));
            try
            {
                Assert.Equal(0, NativePmem2.pmem2_config_set_required_store_granularity(cfg, 2));
                Assert.Equal(0, NativePmem2.pmem2_config_set_length(cfg, (nuint)(4 * MiB)));
                Assert.Equal(0, NativeRsv.pmem2_config_set_vm_reservation(cfg, nrsv, 0));
                Assert.Equal(0, NativePmem2.pmem2_map_new(out nmap, cfg, nsrc));
            }
            finally
            {
                NativePmem2.pmem2_config_delete(ref cfg);
            }

            using var osrc = Pmem2Source.FromHandle(handle);
            var ocfg = T.Config(length: 4 * MiB);
            ocfg.SetVmReservation(orsv, 0);
            using var omap = Pmem2Map.Create(ocfg, osrc);

            var nativeShrink = Native(NativeRsv.pmem2_vm_reservation_shrink(nrsv, 0, (nuint)(4 * MiB)));
            Assert.Equal(((int)Pmem2ErrorCode.VmReservationNotEmpty, "reservation region (offset 0, size 4194304) to be shrunk is occupied by a mapping"), nativeShrink);
            Assert.Equal(nativeShrink, Ours(() => orsv.Shrink(0, 4 * MiB)));

            var nativeDelete = Native(NativeRsv.pmem2_vm_reservation_delete(ref nrsv));
            var oursDelete = Ours(orsv.Dispose);
            Assert.Equal(((int)Pmem2ErrorCode.VmReservationNotEmpty, "vm reservation 0x? isn't empty"), (nativeDelete.Code, Mask(nativeDelete.Message)));
            Assert.Equal((nativeDelete.Code, Mask(nativeDelete.Message)), (oursDelete.Code, Mask(oursDelete.Message)));
            Assert.Equal($"vm reservation 0x{orsv.Address:x} isn't empty", oursDelete.Message);
        }
        finally
        {
            if (nmap != 0)
            {
                Assert.Equal(0, NativePmem2.pmem2_map_delete(ref nmap));
            }

            Assert.Equal(0, NativeRsv.pmem2_vm_reservation_delete(ref nrsv));
            NativePmem2.pmem2_source_delete(ref nsrc);
        }

        orsv.Dispose(); // the map is gone: now it succeeds
        Assert.Equal(0, orsv.MapCount);
    }

    [Fact]
    public void MapFromExistingOverlapMessagesMatch()
    {
        const int size = 1 << 20;
        var mem = LibC.mmap(0, size, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
        Assert.NotEqual(-1, mem);
        Assert.Equal(0, NativePmem2.pmem2_source_from_anon(out var nsrc, size));
        var nmap = (nint)0;
        Pmem2Map? omap = null;
        try
        {
            using var osrc = Pmem2Source.FromAnonymous(size);
            // Each library registers the first half in its own registry; the second registration overlaps.
            var half = mem + (size / 2);
            Assert.Equal(0, NativeRsv.pmem2_map_from_existing(out nmap, nsrc, mem, size / 2, 2));
            omap = Pmem2Map.FromExisting(osrc, mem, size / 2, Pmem2Granularity.Page);
            foreach (var (address, length) in new (nint, ulong)[] { (mem, size / 2), (mem - 4096, 8192), (half - 1, 4096), (mem + 4096, 4096), (mem - 4096, size) })
            {
                var native = Native(NativeRsv.pmem2_map_from_existing(out var extra, nsrc, address, (nuint)length, 2));
                Assert.Equal(0, extra);
                var ours = Ours(() => Pmem2Map.FromExisting(osrc, address, length, Pmem2Granularity.Page).Dispose());
                Assert.Equal(native, ours);
                Assert.Equal(((int)Pmem2ErrorCode.MapExists, $"Provided mapping(addr 0x{address:x} len {length}) is already registered by libpmem2"), ours);
            }

            // Right after the registered half: free for both.
            Assert.Equal(0, NativeRsv.pmem2_map_from_existing(out var after, nsrc, half, size / 2, 2));
            Assert.Equal(0, NativePmem2.pmem2_map_delete(ref after));
            Pmem2Map.FromExisting(osrc, half, size / 2, Pmem2Granularity.Page).Dispose();
        }
        finally
        {
            omap?.Dispose();
            if (nmap != 0)
            {
                Assert.Equal(0, NativePmem2.pmem2_map_delete(ref nmap));
            }

            NativePmem2.pmem2_source_delete(ref nsrc);
            _ = LibC.munmap(mem, size);
        }
    }

    [Fact]
    public void McsafeLengthMessagesMatch()
    {
        foreach (var fileSize in new long[] { 0, 3072 })
        {
            using var file = new TempFile(fileSize);
            using var handle = file.OpenHandle();
            Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var nsrc, (int)handle.DangerousGetHandle()));
            using var osrc = Pmem2Source.FromHandle(handle);
            try
            {
                var buffer = new byte[8192];
                foreach (var (offset, length) in new (ulong, int)[] { (0, 3073), (1, 4096), (3072, 1), (3071, 2), (ulong.MaxValue, 100), (ulong.MaxValue - 1, 4096), (0, 0) })
                {
                    // libpmem2 lets an offset past the end through when the length fits its wrapped-around
                    // remainder (and then reads nothing or writes past the end); ours refuses (documented).
                    if (offset > (ulong)fileSize && (ulong)length <= unchecked((ulong)fileSize - offset))
                    {
                        continue;
                    }

                    foreach (var write in new[] { false, true })
                    {
                        var pin = GCHandle.Alloc(buffer, GCHandleType.Pinned);
                        int rc;
                        try
                        {
                            rc = write
                                ? NativeRsv.pmem2_source_pwrite_mcsafe(nsrc, pin.AddrOfPinnedObject(), (nuint)length, (nuint)offset)
                                : NativeRsv.pmem2_source_pread_mcsafe(nsrc, pin.AddrOfPinnedObject(), (nuint)length, (nuint)offset);
                        }
                        finally
                        {
                            pin.Free();
                        }

                        var native = Native(rc);
                        var ours = Ours(() =>
                        {
                            if (write)
                            {
                                osrc.PwriteMcsafe(buffer.AsSpan(0, length), offset);
                            }
                            else
                            {
                                osrc.PreadMcsafe(buffer.AsSpan(0, length), offset);
                            }
                        });
                        Assert.Equal(native, ours);
                    }
                }
            }
            finally
            {
                NativePmem2.pmem2_source_delete(ref nsrc);
            }

            Assert.Equal(fileSize, new FileInfo(file.Path).Length);
        }

        using var f = new TempFile(3072);
        using var src = f.OpenSource();
        Assert.Equal(((int)Pmem2ErrorCode.LengthOutOfRange, "size of read 4096 from offset 1 goes beyond the file length 3071"), Ours(() => src.PreadMcsafe(new byte[4096], 1)));
        Assert.Equal(((int)Pmem2ErrorCode.LengthOutOfRange, "size of read 1 from offset 3072 goes beyond the file length 0"), Ours(() => src.PreadMcsafe(new byte[1], 3072)));
        Assert.Equal(((int)Pmem2ErrorCode.LengthOutOfRange, "size of read 4096 from offset 18446744073709551615 goes beyond the file length 3073"),
            Ours(() => src.PwriteMcsafe(new byte[4096], ulong.MaxValue)));
        // Past the end but within libpmem2's wrapped-around remainder: refused by ours only.
        Assert.Equal(((int)Pmem2ErrorCode.LengthOutOfRange, "offset 4000 goes beyond the file length 3072"), Ours(() => src.PreadMcsafe(new byte[10], 4000)));
    }

    /// <summary>The libpmem2 calls tests/Shared/NativePmem2.cs does not bind (yet) on this branch.</summary>
    private static class NativeRsv
    {
        private const string Lib = "libpmem2.so.1";

        [DllImport(Lib)] public static extern int pmem2_vm_reservation_new(out nint rsv, nint addr, nuint size);
        [DllImport(Lib)] public static extern int pmem2_vm_reservation_delete(ref nint rsv);
        [DllImport(Lib)] public static extern nuint pmem2_vm_reservation_get_size(nint rsv);
        [DllImport(Lib)] public static extern int pmem2_vm_reservation_extend(nint rsv, nuint size);
        [DllImport(Lib)] public static extern int pmem2_vm_reservation_shrink(nint rsv, nuint offset, nuint size);
        [DllImport(Lib)] public static extern int pmem2_config_set_vm_reservation(nint cfg, nint rsv, nuint offset);
        [DllImport(Lib)] public static extern int pmem2_map_from_existing(out nint map, nint src, nint addr, nuint len, int granularity);
        [DllImport(Lib)] public static extern int pmem2_source_pread_mcsafe(nint src, nint buf, nuint size, nuint offset);
        [DllImport(Lib)] public static extern int pmem2_source_pwrite_mcsafe(nint src, nint buf, nuint size, nuint offset);
    }
}
