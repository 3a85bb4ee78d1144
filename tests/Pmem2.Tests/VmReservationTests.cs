using System.Globalization;
using Pmem2.Internal.Interop;

namespace Pmem2.Tests;

/// <summary>Port of src/test/pmem2_vm_reservation and pmem2_map_from_existing.</summary>
public class VmReservationTests
{
    private const ulong MiB = T.MiB;

    internal static string? Vma(nint address)
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            var range = line.Split(' ')[0].Split('-');
            var start = ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var end = ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if ((ulong)address >= start && (ulong)address < end)
            {
                return line;
            }
        }

        return null;
    }

    private static Pmem2Config InReservation(Pmem2VmReservation rsv, ulong offset, ulong length = 0)
    {
        var cfg = T.Config(length: length);
        cfg.SetVmReservation(rsv, offset);
        return cfg;
    }

    [Fact]
    public void NewValidatesAlignmentAndPlacesAt2MiB()
    {
        var e = T.Fails(Pmem2ErrorCode.AddressUnaligned, () => Pmem2VmReservation.Create(4097, 4096));
        Assert.Equal("address 0x1001 is not a multiple of 0x1000", e.Message);
        e = T.Fails(Pmem2ErrorCode.LengthUnaligned, () => Pmem2VmReservation.Create(0, 4097));
        Assert.Equal("reservation size 4097 is not a multiple of 4096", e.Message);
        using var rsv = Pmem2VmReservation.Create(0, 16 * MiB);
        Assert.Equal(0, rsv.Address % (nint)(2 * MiB));
        Assert.Equal(16 * MiB, rsv.Size);
        Assert.Contains("---p", Vma(rsv.Address));
    }

    [Fact]
    public void FixedAddressOverlappingAReservationOrAMapIsMappingExists()
    {
        using var rsv = Pmem2VmReservation.Create(0, 8 * MiB);
        T.Fails(Pmem2ErrorCode.MappingExists, () => Pmem2VmReservation.Create(rsv.Address, 8 * MiB));
        T.Fails(Pmem2ErrorCode.MappingExists, () => Pmem2VmReservation.Create(rsv.Address - (nint)MiB, 2 * MiB));
        T.Fails(Pmem2ErrorCode.MappingExists, () => Pmem2VmReservation.Create(rsv.Address + (nint)(7 * MiB), 2 * MiB));

        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(), src);
        T.Fails(Pmem2ErrorCode.MappingExists, () => Pmem2VmReservation.Create(map.Address, 4096));
    }

    [Fact]
    public void MapsGoWhereAskedAndDeleteMendsTheReservation()
    {
        using var file = new TempFile(4 * (long)MiB);
        File.WriteAllBytes(file.Path, Enumerable.Range(0, 4 << 20).Select(i => (byte)(i / 4096)).ToArray());
        using var src = file.OpenSource();
        var rsv = Pmem2VmReservation.Create(0, 16 * MiB);
        var maps = new List<Pmem2Map>();
        for (ulong i = 0; i < 4; i++)
        {
            var map = Pmem2Map.Create(InReservation(rsv, i * 4 * MiB), src);
            Assert.Equal(rsv.Address + (nint)(i * 4 * MiB), map.Address);
            Assert.Equal(4 * MiB, map.Size);
            Assert.Equal(1, map.GetSpan()[4096]);
            maps.Add(map);
        }

        Assert.Equal(4, rsv.MapCount);
        Assert.Same(maps[0], rsv.FindFirstMap());
        Assert.Same(maps[3], rsv.FindLastMap());
        Assert.Same(maps[2], rsv.FindNextMap(maps[1]));
        Assert.Same(maps[0], rsv.FindPreviousMap(maps[1]));
        Assert.Same(maps[1], rsv.FindMap(5 * MiB, 1));
        T.Fails(Pmem2ErrorCode.MappingNotFound, () => rsv.FindPreviousMap(maps[0]));
        T.Fails(Pmem2ErrorCode.MappingNotFound, () => rsv.FindNextMap(maps[3]));

        // Occupied regions, too little room, unaligned offset.
        T.Fails(Pmem2ErrorCode.MappingExists, () => Pmem2Map.Create(InReservation(rsv, 0), src));
        T.Fails(Pmem2ErrorCode.MappingExists, () => Pmem2Map.Create(InReservation(rsv, 2 * MiB), src));
        T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => Pmem2Map.Create(InReservation(rsv, 14 * MiB), src));
        T.Fails(Pmem2ErrorCode.OffsetUnaligned, () => Pmem2Map.Create(InReservation(rsv, 100), src));

        var notEmpty = T.Fails(Pmem2ErrorCode.VmReservationNotEmpty, () => rsv.Dispose());
        Assert.Equal($"vm reservation 0x{rsv.Address:x} isn't empty", notEmpty.Message);

        // Unmap every second map: its range becomes PROT_NONE again, not a hole.
        maps[1].Dispose();
        maps[3].Dispose();
        Assert.Contains("---p", Vma(rsv.Address + (nint)(4 * MiB)));
        Assert.Equal(2, rsv.MapCount);
        T.Fails(Pmem2ErrorCode.MappingNotFound, () => rsv.FindMap(4 * MiB, 4 * MiB));
        using (var again = Pmem2Map.Create(InReservation(rsv, 4 * MiB, 2 * MiB), src))
        {
            Assert.Equal(2 * MiB, again.Size);
        }

        maps[0].Dispose();
        maps[2].Dispose();
        rsv.Dispose();
        rsv.Dispose();
        Assert.Null(Vma(rsv.Address));
    }

    [Fact]
    public void GranularityFailureMendsTheReservation()
    {
        using var file = new TempFile(4 * (long)MiB);
        using var src = file.OpenSource();
        using var rsv = Pmem2VmReservation.Create(0, 4 * MiB);
        var cfg = InReservation(rsv, 0);
        cfg.RequiredStoreGranularity = Pmem2Granularity.CacheLine;
        T.Fails(Pmem2ErrorCode.GranularityNotSupported, () => Pmem2Map.Create(cfg, src));
        Assert.Contains("---p", Vma(rsv.Address));
        cfg.RequiredStoreGranularity = Pmem2Granularity.Page;
        using var map = Pmem2Map.Create(cfg, src);
        Assert.Equal(4 * MiB, map.Size);
    }

    [Fact]
    public void ExtendAndShrink()
    {
        using var file = new TempFile(2 * (long)MiB);
        using var src = file.OpenSource();
        using var rsv = Pmem2VmReservation.Create(0, 12 * MiB);
        var start = rsv.Address;
        Assert.Equal("reservation extension size 100 is not a multiple of 4096", T.Fails(Pmem2ErrorCode.LengthUnaligned, () => rsv.Extend(100)).Message);

        // New mappings usually land right below older ones, so make sure the range after the
        // reservation is free: give back its last 4 MiB, then grow into them again.
        rsv.Shrink(8 * MiB, 4 * MiB);
        Assert.Equal(8 * MiB, rsv.Size);
        rsv.Extend(4 * MiB);
        Assert.Equal(12 * MiB, rsv.Size);
        Assert.Contains("---p", Vma(start + (nint)(11 * MiB)));

        Assert.Equal("reservation shrink offset 100 is not a multiple of 4096", T.Fails(Pmem2ErrorCode.OffsetUnaligned, () => rsv.Shrink(100, 4096)).Message);
        Assert.Equal("reservation shrink size 100 is not a multiple of 4096", T.Fails(Pmem2ErrorCode.LengthUnaligned, () => rsv.Shrink(0, 100)).Message);
        Assert.Equal("reservation shrink offset 12582912 is out of reservation range", T.Fails(Pmem2ErrorCode.OffsetOutOfRange, () => rsv.Shrink(12 * MiB, 4096)).Message);
        Assert.Equal("reservation shrink size 0 cannot be zero", T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => rsv.Shrink(0, 0)).Message);
        Assert.Equal("reservation shrink size 8388608 stands out of reservation range", T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => rsv.Shrink(8 * MiB, 8 * MiB)).Message);
        Assert.Equal("shrinking reservation from the middle is not supported", T.Fails(Pmem2ErrorCode.NoSupp, () => rsv.Shrink(4 * MiB, 4096)).Message);
        Assert.Equal("shrinking whole reservation is not supported", T.Fails(Pmem2ErrorCode.NoSupp, () => rsv.Shrink(0, 12 * MiB)).Message);
        // offset + size wraps around (libpmem2's unsigned arithmetic): "from the middle", not "out of range".
        T.Fails(Pmem2ErrorCode.NoSupp, () => rsv.Shrink(4096, ulong.MaxValue - 4095));
        Assert.Equal(12 * MiB, rsv.Size);

        using var map = Pmem2Map.Create(InReservation(rsv, 2 * MiB), src);
        var occupied = T.Fails(Pmem2ErrorCode.VmReservationNotEmpty, () => rsv.Shrink(0, 4 * MiB));
        Assert.Equal("reservation region (offset 0, size 4194304) to be shrunk is occupied by a mapping", occupied.Message);
        rsv.Shrink(0, 2 * MiB);
        Assert.Equal(start + (nint)(2 * MiB), rsv.Address);
        Assert.Same(map, rsv.FindMap(0, 1));
        rsv.Shrink(6 * MiB, 4 * MiB);
        Assert.Equal(6 * MiB, rsv.Size);
        Assert.Null(Vma(start));
        map.Dispose();
        Assert.Equal(0, rsv.MapCount);
    }

    [Fact]
    public void FromExistingWrapsWithoutOwning()
    {
        const int size = 1 << 20;
        var mem = LibC.mmap(0, size, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
        Assert.NotEqual(-1, mem);
        try
        {
            using var src = Pmem2Source.FromAnonymous(size);
            var map = Pmem2Map.FromExisting(src, mem, size, Pmem2Granularity.Byte);
            Assert.Equal(mem, map.Address);
            Assert.Equal((ulong)size, map.Size);
            Assert.Equal(Pmem2Granularity.Byte, map.StoreGranularity);
            map.Memset(0, 9, 4096);
            var exists = T.Fails(Pmem2ErrorCode.MapExists, () => Pmem2Map.FromExisting(src, mem, size, Pmem2Granularity.Page));
            Assert.Equal($"Provided mapping(addr 0x{mem:x} len 1048576) is already registered by libpmem2", exists.Message);
            T.Fails(Pmem2ErrorCode.MapExists, () => Pmem2Map.FromExisting(src, mem - 16, 32, Pmem2Granularity.Page));
            T.Fails(Pmem2ErrorCode.MapExists, () => Pmem2Map.FromExisting(src, mem + size - 1, 32, Pmem2Granularity.Page));
            map.Dispose();
            Assert.NotNull(Vma(mem)); // still mapped: the caller owns it
            Assert.Equal(9, System.Runtime.InteropServices.Marshal.ReadByte(mem));
            using var again = Pmem2Map.FromExisting(src, mem, size, Pmem2Granularity.Page);
        }
        finally
        {
            _ = LibC.munmap(mem, size);
        }
    }
}
