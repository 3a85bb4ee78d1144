using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;
using Xunit.Abstractions;

namespace Pmem2.NativeTests;

/// <summary>
/// Virtual memory reservations and pmem2_map_from_existing against native: creation (size, address
/// alignment, fixed and occupied addresses), maps placed into a reservation (offset, length,
/// granularity failures that must mend the reservation), overlaps, find / find_first / last / prev /
/// next, extend, shrink, and deleting a reservation that still holds maps. Each library gets its own
/// reservation built the same way; results, and positions relative to the reservation, must be equal.
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class VmReservationTests
{
    private const ulong KiB = OracleFiles.KiB;
    private const ulong MiB = OracleFiles.MiB;

    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public VmReservationTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    [Fact]
    public void ReservationCreationMatchesNative()
    {
        var differ = new Differ("vm reservation new");
        ulong[] sizes = [0, 1, 4095, 4 * KiB, 8 * KiB, 2 * MiB, 2 * MiB + 4 * KiB, 64 * MiB, 2048 * MiB];
        foreach (var size in sizes)
        {
            differ.Compare($"reservation_new(NULL, {Raw.Size(size)})", NativeNew(0, size, out var n), OursNew(0, size, out var o));
            if (n != 0 && o is not null)
            {
                // A 0-byte reservation is created by libpmem2 but its delete fails (munmap EINVAL).
                NativePmem2.ResetErrorMessage();
                var rc = NativePmem2.pmem2_vm_reservation_delete(ref n);
                differ.Compare($"reservation_delete(reservation of {Raw.Size(size)})", rc == 0 ? Outcome.Ok() : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage()), OursSide.Run(() => { o.Dispose(); return Outcome.Ok(); }));
            }
            else
            {
                NativeDelete(n);
                o?.Dispose();
            }
        }

        // A fixed, free address: found by reserving and releasing, then taken by each library in turn.
        Assert.Equal(0, NativePmem2.pmem2_vm_reservation_new(out var probe, 0, (nuint)(32 * MiB)));
        var free = NativePmem2.pmem2_vm_reservation_get_address(probe);
        NativeDelete(probe);
        foreach (var (label, address, size) in new (string, nint, ulong)[]
                 {
                     ("free aligned address", free, 8 * MiB),
                     ("free address + 4 KiB", free + 4096, 8 * MiB),
                     ("unaligned address", free + 1, 8 * MiB),
                     ("unaligned address, unaligned size", free + 1, 4097),
                     ("aligned address, unaligned size", free, 4097),
                 })
        {
            var native = NativeNew(address, size, out var n);
            if (n != 0)
            {
                differ.Compare($"{label}: native address = requested", Outcome.Value(1), Outcome.Value(NativePmem2.pmem2_vm_reservation_get_address(n) == address ? 1UL : 0UL));
            }

            NativeDelete(n);
            var ours = OursNew(address, size, out var o);
            if (o is not null)
            {
                differ.Compare($"{label}: ours address = requested", Outcome.Value(1), Outcome.Value(o.Address == address ? 1UL : 0UL));
            }

            o?.Dispose();
            differ.Compare($"reservation_new({label}, {Raw.Size(size)})", native, ours);
        }

        // Occupied ranges: the whole of, inside, below and above a live reservation of either library.
        Assert.Equal(0, NativePmem2.pmem2_vm_reservation_new(out var nativeHeld, 0, (nuint)(8 * MiB)));
        using var oursHeld = Pmem2VmReservation.Create(0, 8 * MiB);
        try
        {
            foreach (var (owner, baseAddress) in new[] { ("native", NativePmem2.pmem2_vm_reservation_get_address(nativeHeld)), ("ours", oursHeld.Address) })
            {
                foreach (var (label, delta, size) in new (string, long, ulong)[]
                         {
                             ("same range", 0, 8 * MiB), ("inside", 4 * (long)MiB, 4 * KiB), ("overlapping below", -4 * (long)MiB, 8 * MiB),
                             ("overlapping above", 4 * (long)MiB, 8 * MiB), ("last page", 8 * (long)MiB - 4096, 4 * KiB),
                         })
                {
                    var address = baseAddress + (nint)delta;
                    var native = NativeNew(address, size, out var n);
                    NativeDelete(n);
                    var ours = OursNew(address, size, out var o);
                    o?.Dispose();
                    differ.Compare($"reservation_new({label} of a {owner} reservation, {Raw.Size(size)})", native, ours);
                }
            }
        }
        finally
        {
            NativeDelete(nativeHeld);
        }

        differ.AssertClean(_output, minimumCases: 20);
    }

    /// <summary>
    /// Maps placed into an 8 MiB reservation: reservation offset x map length x file x granularity.
    /// Every map is deleted again (the reservation is mended), so later combinations see it empty.
    /// </summary>
    [Fact]
    public void MapsIntoAReservationMatchNative()
    {
        var differ = new Differ("maps in a reservation");
        const ulong rsvSize = 8 * MiB;
        Assert.Equal(0, NativePmem2.pmem2_vm_reservation_new(out var nrsv, 0, (nuint)rsvSize));
        using var orsv = Pmem2VmReservation.Create(0, rsvSize);
        var nbase = NativePmem2.pmem2_vm_reservation_get_address(nrsv);
        var natives = new List<nint>();
        try
        {
            foreach (var size in new[] { 16 * MiB, 3 * KiB })
            {
                var file = _files[size];
                Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var nsrc, file.Fd(false)));
                natives.Add(nsrc);
                using var osrc = Pmem2Source.FromHandle(file.ReadWrite);
                foreach (var rsvOffset in new ulong[] { 0, KiB, 4 * KiB, 4 * MiB, rsvSize - (4 * KiB), rsvSize, 2 * rsvSize })
                {
                    foreach (var length in new ulong[] { 0, 4 * KiB, 4 * MiB, rsvSize, rsvSize + (4 * KiB) })
                    {
                        foreach (var granularity in new[] { Raw.Page, Raw.Byte })
                        {
                            var label = $"file {Raw.Size(size)}, reservation offset {Raw.Size(rsvOffset)}, length {Raw.Size(length)}, {Raw.Granularity(granularity)}";
                            NativePmem2.ResetErrorMessage();
                            var rc = NativeMap.TryCreate(nsrc, granularity, 0, length, Raw.Shared, Raw.RW, out var nmap, nrsv, rsvOffset);
                            Outcome native;
                            ulong nativeAt = ulong.MaxValue;
                            if (rc == 0)
                            {
                                native = Outcome.Mapped(nmap!.Size, nmap.Granularity, nmap.Address);
                                nativeAt = (ulong)(nmap.Address - nbase);
                                nmap.Dispose();
                            }
                            else
                            {
                                native = Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                            }

                            ulong oursAt = ulong.MaxValue;
                            var ours = OursSide.Run(() =>
                            {
                                var cfg = new Pmem2Config { RequiredStoreGranularity = (Pmem2Granularity)granularity, Length = length };
                                cfg.SetVmReservation(orsv, rsvOffset);
                                using var map = Pmem2Map.Create(cfg, osrc);
                                oursAt = (ulong)(map.Address - orsv.Address);
                                return Outcome.Mapped(map.Size, (int)map.StoreGranularity, map.Address);
                            });
                            differ.Compare(label, native, ours);
                            if (native.Succeeded && ours.Succeeded && nativeAt != oursAt)
                            {
                                differ.Fail($"{label}: placed at reservation offset {nativeAt} by native, {oursAt} by ours");
                            }
                        }
                    }
                }
            }

            // Both reservations were mended after every delete and failure: the whole range maps again.
            var whole = new MapCase("reservation", "fd", 16 * MiB, 0, rsvSize, Raw.Page, Raw.Shared, Raw.RW, false, null);
            Assert.Equal(0, NativeMap.TryCreate(natives[0], Raw.Page, 0, rsvSize, Raw.Shared, Raw.RW, out var last, nrsv, 0));
            last!.Dispose();
            using (var osrc = Pmem2Source.FromHandle(_files[16 * MiB].ReadWrite))
            {
                var cfg = new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, Length = rsvSize };
                cfg.SetVmReservation(orsv, 0);
                using var map = Pmem2Map.Create(cfg, osrc);
                Assert.Equal(orsv.Address, map.Address);
            }

            differ.Compare(whole, Outcome.Ok(), Outcome.Ok());
        }
        finally
        {
            foreach (var src in natives)
            {
                var s = src;
                NativePmem2.pmem2_source_delete(ref s);
            }

            NativeDelete(nrsv);
        }

        differ.AssertClean(_output, minimumCases: 140);
    }

    /// <summary>Overlaps with a map already in the reservation, the find family, and delete / shrink while occupied.</summary>
    [Fact]
    public void OccupiedReservationsMatchNative()
    {
        var differ = new Differ("occupied reservation");
        const ulong rsvSize = 16 * MiB;
        var file = _files[16 * MiB];
        Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var nsrc, file.Fd(false)));
        Assert.Equal(0, NativePmem2.pmem2_vm_reservation_new(out var nrsv, 0, (nuint)rsvSize));
        var orsv = Pmem2VmReservation.Create(0, rsvSize);
        var nbase = NativePmem2.pmem2_vm_reservation_get_address(nrsv);
        var nativeMaps = new List<NativeMap>();
        var oursMaps = new List<Pmem2Map>();
        var osrc = Pmem2Source.FromHandle(file.ReadWrite);
        try
        {
            // Map A at [4 MiB, 8 MiB), then B attempts around it; the successful ones stay.
            foreach (var (off, len) in new (ulong, ulong)[]
                     {
                         (4 * MiB, 4 * MiB), (0, 4 * MiB + 4096), (2 * MiB, 4 * MiB), (4 * MiB, 4096), (6 * MiB, 4 * MiB),
                         (8 * MiB - 4096, 8192), (0, 4 * MiB), (8 * MiB, 4096), (12 * MiB, 4 * MiB), (12 * MiB, 4096),
                     })
            {
                var label = $"map at reservation offset {Raw.Size(off)}, length {Raw.Size(len)}";
                NativePmem2.ResetErrorMessage();
                var rc = NativeMap.TryCreate(nsrc, Raw.Page, 0, len, Raw.Shared, Raw.RW, out var nmap, nrsv, off);
                var native = rc == 0 ? Outcome.Mapped(nmap!.Size, nmap.Granularity, nmap.Address) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                if (nmap is not null)
                {
                    nativeMaps.Add(nmap);
                }

                var ours = OursSide.Run(() =>
                {
                    var cfg = new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, Length = len };
                    cfg.SetVmReservation(orsv, off);
                    var map = Pmem2Map.Create(cfg, osrc);
                    oursMaps.Add(map);
                    return Outcome.Mapped(map.Size, (int)map.StoreGranularity, map.Address);
                });
                differ.Compare(label, native, ours);
            }

            ulong NativeOffset(nint map) => map == 0 ? ulong.MaxValue : (ulong)(NativePmem2.pmem2_map_get_address(map) - nbase);
            Outcome NativeFound(int rc, nint map) => rc == 0 ? Outcome.Value(NativeOffset(map)) : Outcome.Failed(rc, null);
            Outcome OursFound(Func<Pmem2Map> find) => OursSide.Run(() => Outcome.Value((ulong)(find().Address - orsv.Address)));

            foreach (var (off, len) in new (ulong, ulong)[] { (0, 4096), (0, 4 * MiB), (0, 16 * MiB), (5 * MiB, 1), (8 * MiB, 4096), (10 * MiB, 2 * MiB), (12 * MiB, 1), (16 * MiB, 4096), (15 * MiB, 2 * MiB) })
            {
                var rc = NativePmem2.pmem2_vm_reservation_map_find(nrsv, (nuint)off, (nuint)len, out var found);
                differ.Compare($"map_find({Raw.Size(off)}, {Raw.Size(len)})", NativeFound(rc, found), OursFound(() => orsv.FindMap(off, len)), compareMessages: false);
            }

            var frc = NativePmem2.pmem2_vm_reservation_map_find_first(nrsv, out var first);
            differ.Compare("map_find_first", NativeFound(frc, first), OursFound(orsv.FindFirstMap), compareMessages: false);
            var lrc = NativePmem2.pmem2_vm_reservation_map_find_last(nrsv, out var lastMap);
            differ.Compare("map_find_last", NativeFound(lrc, lastMap), OursFound(orsv.FindLastMap), compareMessages: false);
            for (var i = 0; i < Math.Min(nativeMaps.Count, oursMaps.Count); i++)
            {
                var prc = NativePmem2.pmem2_vm_reservation_map_find_prev(nrsv, nativeMaps[i].Handle, out var prev);
                var om = oursMaps[i];
                differ.Compare($"map_find_prev(map #{i})", NativeFound(prc, prev), OursFound(() => orsv.FindPreviousMap(om)), compareMessages: false);
                var nrc = NativePmem2.pmem2_vm_reservation_map_find_next(nrsv, nativeMaps[i].Handle, out var next);
                differ.Compare($"map_find_next(map #{i})", NativeFound(nrc, next), OursFound(() => orsv.FindNextMap(om)), compareMessages: false);
            }

            foreach (var (off, size) in new (ulong, ulong)[] { (0, 4 * MiB), (12 * MiB, 4 * MiB), (0, 4096), (16 * MiB - 4096, 4096) })
            {
                NativePmem2.ResetErrorMessage();
                var src = NativePmem2.pmem2_vm_reservation_shrink(nrsv, (nuint)off, (nuint)size);
                var native = src == 0 ? Outcome.Ok() : Outcome.Failed(src, NativePmem2.TryGetFreshErrorMessage());
                differ.Compare($"shrink occupied reservation ({Raw.Size(off)}, {Raw.Size(size)})", native, OursSide.Run(() => { orsv.Shrink(off, size); return Outcome.Ok(); }));
            }

            var keep = nrsv;
            NativePmem2.ResetErrorMessage();
            var drc = NativePmem2.pmem2_vm_reservation_delete(ref keep);
            differ.Compare("delete a reservation that holds maps", drc == 0 ? Outcome.Ok() : Outcome.Failed(drc, NativePmem2.TryGetFreshErrorMessage()), OursSide.Run(() => { orsv.Dispose(); return Outcome.Ok(); }));
            Assert.Equal(nrsv, keep);
        }
        finally
        {
            nativeMaps.ForEach(m => m.Dispose());
            oursMaps.ForEach(m => m.Dispose());
            osrc.Dispose();
            orsv.Dispose();
            NativeDelete(nrsv);
            NativePmem2.pmem2_source_delete(ref nsrc);
        }

        differ.AssertClean(_output, minimumCases: 30);
    }

    /// <summary>Extend and shrink of an empty 8 MiB reservation (a fresh one per combination).</summary>
    [Fact]
    public void ExtendAndShrinkMatchNative()
    {
        var differ = new Differ("extend / shrink");
        const ulong rsvSize = 8 * MiB;
        foreach (var size in new ulong[] { 0, 1, 4095, 4 * KiB, 2 * MiB })
        {
            Assert.Equal(0, NativePmem2.pmem2_vm_reservation_new(out var n, 0, (nuint)rsvSize));
            using var o = Pmem2VmReservation.Create(0, rsvSize);
            NativePmem2.ResetErrorMessage();
            var rc = NativePmem2.pmem2_vm_reservation_extend(n, (nuint)size);
            var native = rc == 0 ? Outcome.Value(NativePmem2.pmem2_vm_reservation_get_size(n)) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
            NativeDelete(n);
            differ.Compare($"extend(8MiB reservation, {Raw.Size(size)})", native, OursSide.Run(() => { o.Extend(size); return Outcome.Value(o.Size); }));
        }

        ulong[] values = [0, KiB, 4 * KiB, 4 * MiB, rsvSize - (4 * KiB), rsvSize, 2 * rsvSize];
        foreach (var off in values)
        {
            foreach (var size in values)
            {
                Assert.Equal(0, NativePmem2.pmem2_vm_reservation_new(out var n, 0, (nuint)rsvSize));
                using var o = Pmem2VmReservation.Create(0, rsvSize);
                var nativeBase = NativePmem2.pmem2_vm_reservation_get_address(n);
                var oursBase = o.Address;
                NativePmem2.ResetErrorMessage();
                var rc = NativePmem2.pmem2_vm_reservation_shrink(n, (nuint)off, (nuint)size);

                // Size after the shrink, and how far the start moved (in the high bits).
                var native = rc == 0
                    ? Outcome.Value(NativePmem2.pmem2_vm_reservation_get_size(n) | ((ulong)(NativePmem2.pmem2_vm_reservation_get_address(n) - nativeBase) << 40))
                    : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                NativeDelete(n);
                var ours = OursSide.Run(() => { o.Shrink(off, size); return Outcome.Value(o.Size | ((ulong)(o.Address - oursBase) << 40)); });
                differ.Compare($"shrink(8MiB reservation, offset {Raw.Size(off)}, size {Raw.Size(size)})", native, ours);
            }
        }

        differ.AssertClean(_output, minimumCases: 50);
    }

    /// <summary>pmem2_map_from_existing: registration and overlaps with the library's own maps.</summary>
    [Fact]
    public void MapFromExistingMatchesNative()
    {
        var differ = new Differ("map_from_existing");
        var file = _files[16 * MiB];
        Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var nsrc, file.Fd(false)));
        using var osrc = Pmem2Source.FromHandle(file.ReadWrite);

        // Address space to wrap: an (inaccessible) reservation per library; nothing touches the memory.
        Assert.Equal(0, NativePmem2.pmem2_vm_reservation_new(out var nrsv, 0, (nuint)(4 * MiB)));
        using var orsv = Pmem2VmReservation.Create(0, 4 * MiB);
        var nbase = NativePmem2.pmem2_vm_reservation_get_address(nrsv);
        var nativeMaps = new List<nint>();
        var oursMaps = new List<Pmem2Map>();
        try
        {
            foreach (var (off, len, granularity) in new (ulong, ulong, int)[]
                     {
                         (1 * MiB, 64 * KiB, Raw.Page), (1 * MiB, 64 * KiB, Raw.Page), (1 * MiB - 4096, 8192, Raw.Byte),
                         (1 * MiB + 60 * KiB, 8192, Raw.CacheLine), (1 * MiB + 64 * KiB, 4096, Raw.CacheLine), (1 * MiB - 4096, 4096, Raw.Byte),
                         (2 * MiB + 1, 100, Raw.Page), (2 * MiB + 50, 100, Raw.Page), (0, 4 * MiB, Raw.Page),
                     })
            {
                var label = $"from_existing(reservation + {Raw.Size(off)}, {Raw.Size(len)}, {Raw.Granularity(granularity)})";
                NativePmem2.ResetErrorMessage();
                var rc = NativePmem2.pmem2_map_from_existing(out var nmap, nsrc, nbase + (nint)off, (nuint)len, granularity);
                Outcome native;
                if (rc == 0)
                {
                    nativeMaps.Add(nmap);
                    native = Outcome.Mapped(NativePmem2.pmem2_map_get_size(nmap), NativePmem2.pmem2_map_get_store_granularity(nmap), NativePmem2.pmem2_map_get_address(nmap) - nbase);
                }
                else
                {
                    native = Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                }

                var ours = OursSide.Run(() =>
                {
                    var map = Pmem2Map.FromExisting(osrc, orsv.Address + (nint)off, len, (Pmem2Granularity)granularity);
                    oursMaps.Add(map);
                    return Outcome.Mapped(map.Size, (int)map.StoreGranularity, map.Address - orsv.Address);
                });
                differ.Compare(label, native, ours);
            }
        }
        finally
        {
            foreach (var m in nativeMaps)
            {
                var map = m;
                NativePmem2.pmem2_map_delete(ref map);
            }

            oursMaps.ForEach(m => m.Dispose());
            NativeDelete(nrsv);
            NativePmem2.pmem2_source_delete(ref nsrc);
        }

        differ.AssertClean(_output, minimumCases: 9);
    }

    private static Outcome NativeNew(nint address, ulong size, out nint rsv)
    {
        NativePmem2.ResetErrorMessage();
        var rc = NativePmem2.pmem2_vm_reservation_new(out rsv, address, (nuint)size);
        if (rc != 0)
        {
            rsv = 0;
            return Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
        }

        var a = NativePmem2.pmem2_vm_reservation_get_address(rsv);
        return Reservation(NativePmem2.pmem2_vm_reservation_get_size(rsv), a, size);
    }

    private static Outcome OursNew(nint address, ulong size, out Pmem2VmReservation? rsv)
    {
        Pmem2VmReservation? created = null;
        var outcome = OursSide.Run(() =>
        {
            created = Pmem2VmReservation.Create(address, size);
            return Reservation(created.Size, created.Address, size);
        });
        rsv = created;
        return outcome;
    }

    /// <summary>Size plus the alignment class libpmem2 promises: 1 GiB from 2 GiB up, 2 MiB below.</summary>
    private static Outcome Reservation(ulong size, nint address, ulong requested)
    {
        var alignment = requested >= 2048 * MiB ? 1024 * MiB : 2 * MiB;
        return new Outcome(0, size, -1, (ulong)address % alignment == 0, null, null);
    }

    /// <summary>Best-effort delete (libpmem2 cannot delete a 0-byte reservation: munmap EINVAL; it is leaked).</summary>
    private static void NativeDelete(nint rsv)
    {
        if (rsv != 0)
        {
            _ = NativePmem2.pmem2_vm_reservation_delete(ref rsv);
        }
    }
}
