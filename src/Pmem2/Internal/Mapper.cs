using System.Runtime.InteropServices;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal;

/// <summary>
/// pmem2_map_new (map_posix.c L291-553), step by step and in libpmem2's order, so the same error wins
/// for every invalid combination. The caller wraps the result in a <see cref="Pmem2MappingHandle"/>.
/// </summary>
internal static unsafe class Mapper
{
    private const nuint MiB = 1 << 20;
    private const nuint GiB = 1 << 30;

    /// <summary>A live mapping: [Address, Address+ReservedLength) is ours to munmap.</summary>
    internal readonly record struct Mapping(nint Address, nuint ContentLength, nuint ReservedLength, bool MapSync, Pmem2Granularity Granularity);

    public static Mapping Map(Pmem2Config cfg, Pmem2Source src)
    {
        // 1. The granularity must be set; nothing else has been looked at yet.
        if (cfg.RequiredStoreGranularity is not { } requested)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.GranularityNotSet, "please define the max granularity requested for the mapping");
        }

        src.ThrowIfDisposed();

        // 2. Alignment, then the live size (fstat: a closed fd gives INVALID_FILE_HANDLE here).
        var srcAlignment = src.GetAlignment();
        var fileLen = src.GetSize();

        // 3. Offset alignment; an anonymous source ignores the offset from here on.
        if (cfg.Offset % srcAlignment != 0)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.OffsetUnaligned, $"offset is not a multiple of {srcAlignment}");
        }

        var anonymous = src.Type == Pmem2SourceType.Anonymous;
        var effectiveOffset = anonymous ? 0 : cfg.Offset;

        // 4. Protection and source-type checks.
        var proto = TranslateProtection(cfg.Protection);
        if (src.Type == Pmem2SourceType.DeviceDax && cfg.Sharing == Pmem2Sharing.Private)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.SrcDevdaxPrivate, "device DAX does not support mapping with MAP_PRIVATE");
        }

        // 5. Length validation (config.c L125-157), then the content length.
        ValidateLength(cfg, fileLen, srcAlignment);
        var contentLength = (nuint)(cfg.Length != 0 ? cfg.Length : fileLen - effectiveOffset);

        // 6. Placement: inside the configured reservation, or at a 2 MiB (1 GiB for >= 2 GiB) aligned
        //    address found with an over-sized placeholder.
        var rsv = cfg.VmReservation;
        void* reserv;
        nuint reservedLength;
        if (rsv is not null)
        {
            reserv = PlaceInReservation(rsv, cfg.VmReservationOffset, contentLength, (nuint)srcAlignment, out reservedLength);
        }
        else
        {
            var alignment = MapAlignment(contentLength, (nuint)srcAlignment);
            reserv = Reserve(contentLength, alignment, out reservedLength);
        }

        // 7. The real mapping on top of the placeholder.
        var flags = LibC.MAP_FIXED;
        if (cfg.Sharing == Pmem2Sharing.Private)
        {
            flags |= LibC.MAP_PRIVATE;
        }

        if (anonymous)
        {
            flags |= LibC.MAP_ANONYMOUS;
        }

        var errno = FileMap(reserv, contentLength, proto, flags, src, (long)effectiveOffset, out var mapSync, out var addr);
        if (errno != 0)
        {
            Undo(rsv, reserv, reservedLength);
            throw errno switch
            {
                LibC.EACCES => Errors.FromErrno(Pmem2ErrorCode.NoAccess, errno, "mmap"),
                LibC.EOPNOTSUPP => Errors.FromErrno(Pmem2ErrorCode.NoSupp, errno, "mmap"),
                LibC.EEXIST => Errors.FromErrno(Pmem2ErrorCode.MappingExists, errno, "mmap"),
                _ => Errors.FromErrno(errno, "mmap"),
            };
        }

        // 8. Granularity, decided after the mapping exists; undo it when coarser than tolerated.
        var eadr = GranularityPolicy.DetectEadr();
        var available = anonymous ? Pmem2Granularity.Byte : GranularityPolicy.MinGranularity(eadr, mapSync, cfg.Sharing);
        if (available > requested)
        {
            Undo(rsv, addr, reservedLength);
            throw new Pmem2Exception(Pmem2ErrorCode.GranularityNotSupported, GranularityPolicy.NotSupportedMessage(requested, available));
        }

        // 9. Extension: page-cache advice before the first touch (Pmem2Config.PageCache.cs; best-effort).
        if (cfg.PageCacheAdvice == Pmem2PageCacheAdvice.Random && available == Pmem2Granularity.Page && !anonymous)
        {
            _ = LibC.madvise(addr, contentLength, LibC.MADV_RANDOM);
        }

        return new Mapping((nint)addr, contentLength, reservedLength, mapSync, available);
    }

    /// <summary>Gives a failed map's range back: munmap, or inside a reservation re-cover it with PROT_NONE.</summary>
    private static void Undo(Pmem2VmReservation? rsv, void* addr, nuint length)
    {
        if (rsv is null)
        {
            _ = LibC.munmap(addr, length);
        }
        else
        {
            _ = Pmem2VmReservation.Mend(addr, length);
        }
    }

    /// <summary>The reservation checks of map_new (L382-425), in libpmem2's order. The caller holds the
    /// reservation's lock until the map is recorded in it.</summary>
    private static void* PlaceInReservation(Pmem2VmReservation rsv, ulong rsvOffset, nuint contentLength, nuint srcAlignment, out nuint reservedLength)
    {
        rsv.ThrowIfDisposed();
        var pageMask = (nuint)Environment.SystemPageSize - 1;
        reservedLength = (contentLength + pageMask) & ~pageMask;
        if (rsvOffset % (ulong)Environment.SystemPageSize != 0)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.OffsetUnaligned,
                $"virtual memory reservation offset {rsvOffset} is not a multiple of {Environment.SystemPageSize}");
        }

        if (rsvOffset > rsv.Size || reservedLength > rsv.Size - rsvOffset)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.LengthOutOfRange,
                $"Reservation 0x{rsv.Address:x} has not enough space for the intended content");
        }

        var region = (nuint)rsv.Address + (nuint)rsvOffset;
        if (region % srcAlignment != 0)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.AddressUnaligned,
                $"base mapping address 0x{region:x} (virtual memory reservation address + offset) is not a multiple of {srcAlignment} required by device DAX");
        }

        if (rsv.FindLocked(rsvOffset, reservedLength) is not null)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.MappingExists,
                $"region of the reservation 0x{rsv.Address:x} at the offset {rsvOffset} and length {reservedLength} is at least partly occupied by other mapping");
        }

        return (void*)region;
    }

    /// <summary>PMEM2_PROT_* to PROT_* (map_posix.c L341-350).</summary>
    internal static int TranslateProtection(Pmem2Protection protection)
    {
        var proto = LibC.PROT_NONE;
        if ((protection & Pmem2Protection.Exec) != 0)
        {
            proto |= LibC.PROT_EXEC;
        }

        if ((protection & Pmem2Protection.Read) != 0)
        {
            proto |= LibC.PROT_READ;
        }

        if ((protection & Pmem2Protection.Write) != 0)
        {
            proto |= LibC.PROT_WRITE;
        }

        return proto;
    }

    /// <summary>pmem2_config_validate_length (config.c L125-157), in libpmem2's order.</summary>
    internal static void ValidateLength(Pmem2Config cfg, ulong fileLen, ulong alignment)
    {
        if (fileLen == 0)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.SourceEmpty, "file length is equal 0");
        }

        if (cfg.Length % alignment != 0)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.LengthUnaligned, $"length is not a multiple of {alignment}");
        }

        var end = unchecked(cfg.Offset + cfg.Length);
        if (end < cfg.Offset)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.MapRange, "overflow of offset and length");
        }

        if (end > fileLen)
        {
            throw new Pmem2Exception(Pmem2ErrorCode.MapRange, "mapping larger than file size");
        }
    }

    /// <summary>get_map_alignment: 2 MiB, 1 GiB from 2 GiB up, or the source alignment when larger.
    /// Large, aligned placement lets the kernel use huge pages on DAX.</summary>
    internal static nuint MapAlignment(nuint length, nuint sourceAlignment)
    {
        var align = length >= 2 * GiB ? GiB : 2 * MiB;
        return sourceAlignment > align ? sourceAlignment : align;
    }

    /// <summary>
    /// map_reserve (map_posix.c L110-188): map len + align bytes of inaccessible anonymous memory,
    /// round the start up to <paramref name="alignment"/>, and give back the slack before and after
    /// roundup(len, page). The remaining placeholder is then replaced with MAP_FIXED, so the target
    /// range is never unmapped in between (no other thread's mmap can land there).
    /// PROT_NONE + MAP_NORESERVE: no commit charge (libpmem2 uses PROT_READ for the same purpose).
    /// </summary>
    private static void* Reserve(nuint len, nuint alignment, out nuint reservedLength)
    {
        var pageMask = (nuint)Environment.SystemPageSize - 1;
        if (len > nuint.MaxValue - alignment - pageMask)
        {
            Errors.ThrowErrno(LibC.ENOMEM, "mmap MAP_ANONYMOUS");
        }

        var dlength = len + alignment;
        var daddr = LibC.mmap(null, dlength, LibC.PROT_NONE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, -1, 0);
        if (daddr == LibC.MAP_FAILED)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), "mmap MAP_ANONYMOUS");
        }

        var reserv = ((nuint)daddr + alignment - 1) & ~(alignment - 1);
        reservedLength = (len + pageMask) & ~pageMask;
        var before = reserv - (nuint)daddr;
        if (before != 0 && LibC.munmap(daddr, before) != 0)
        {
            var e = Marshal.GetLastPInvokeError();
            _ = LibC.munmap(daddr, dlength);
            Errors.ThrowErrno(e, "munmap");
        }

        var after = dlength - reservedLength - before;
        if (after != 0 && LibC.munmap((void*)(reserv + reservedLength), after) != 0)
        {
            var e = Marshal.GetLastPInvokeError();
            _ = LibC.munmap((void*)reserv, dlength - before);
            Errors.ThrowErrno(e, "munmap");
        }

        return (void*)reserv;
    }

    /// <summary>
    /// file_map (map_posix.c L197-245). PRIVATE: one mmap. SHARED: first MAP_SHARED_VALIDATE|MAP_SYNC,
    /// which only DAX file systems and device DAX accept (MAP_SYNC guarantees the file metadata is
    /// durable whenever a write fault completes, so CPU flushes alone make data persistent); on EINVAL
    /// (kernel before 4.15 without MAP_SHARED_VALIDATE) or EOPNOTSUPP (not DAX) fall back to MAP_SHARED.
    /// Returns 0 or errno.
    /// <para>
    /// Unlike libpmem2, MAP_SYNC is first tried at an address the kernel chooses, and only then with
    /// MAP_FIXED over the placeholder. A file system refuses MAP_SYNC from its -&gt;mmap hook, after the
    /// kernel has already unmapped whatever MAP_FIXED covers, so a refused MAP_FIXED attempt leaves a hole
    /// where the placeholder was (verified on Linux 6.18, ext4): another thread's mmap could land in it
    /// and be clobbered by the MAP_SHARED retry, two live maps then sharing an address.
    /// </para>
    /// </summary>
    private static int FileMap(void* reserv, nuint len, int proto, int flags, Pmem2Source src, long offset, out bool mapSync, out void* addr)
    {
        mapSync = false;
        if ((flags & LibC.MAP_PRIVATE) != 0)
        {
            addr = Mmap(reserv, len, proto, flags, src, offset);
            return addr == LibC.MAP_FAILED ? Marshal.GetLastPInvokeError() : 0;
        }

        var forced = src.Type == Pmem2SourceType.Anonymous ? null : GranularityPolicy.MapSyncOverride;
        if (forced is null)
        {
            // The probe: same file, offset, length and flags, but no MAP_FIXED, so a refusal unmaps nothing.
            var syncFlags = LibC.MAP_SHARED_VALIDATE | LibC.MAP_SYNC;
            var probe = Mmap(null, len, proto, (flags & ~LibC.MAP_FIXED) | syncFlags, src, offset);
            var trySync = true;
            if (probe != LibC.MAP_FAILED)
            {
                _ = LibC.munmap(probe, len);
            }
            else
            {
                var errno = Marshal.GetLastPInvokeError();
                if (!ProbeRefusalMeansNoMapSync(errno))
                {
                    // Any other failure, ENOMEM included, fails the map: trying MAP_FIXED|MAP_SYNC blind
                    // would unmap the placeholder first, and a refusal would then leave a hole.
                    addr = LibC.MAP_FAILED;
                    return errno;
                }

                trySync = false;
            }

            if (trySync)
            {
                addr = Mmap(reserv, len, proto, flags | syncFlags, src, offset);
                if (addr != LibC.MAP_FAILED)
                {
                    mapSync = true;
                    return 0;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno is not (LibC.EINVAL or LibC.EOPNOTSUPP))
                {
                    return errno;
                }
            }
        }

        addr = Mmap(reserv, len, proto, flags | LibC.MAP_SHARED, src, offset);
        if (addr == LibC.MAP_FAILED)
        {
            return Marshal.GetLastPInvokeError();
        }

        mapSync = forced ?? false;
        return 0;
    }

    /// <summary>
    /// Whether a failed MAP_SYNC probe (no MAP_FIXED) means "this file cannot be mapped with MAP_SYNC"
    /// (EINVAL: no MAP_SHARED_VALIDATE; EOPNOTSUPP: not DAX), so the map falls back to MAP_SHARED. Every
    /// other errno, ENOMEM included, is the map's failure: the MAP_FIXED|MAP_SYNC attempt over the
    /// placeholder is made only after a probe succeeded, because a refused MAP_FIXED leaves a hole.
    /// </summary>
    internal static bool ProbeRefusalMeansNoMapSync(int errno) => errno is LibC.EINVAL or LibC.EOPNOTSUPP;

    private static void* Mmap(void* addr, nuint len, int proto, int flags, Pmem2Source src, long offset)
    {
        if (src.Handle is not { } handle)
        {
            return LibC.mmap(addr, len, proto, flags, -1, offset);
        }

        try
        {
            return LibC.mmap(addr, len, proto, flags, handle, offset);
        }
        catch (ObjectDisposedException)
        {
            // The handle was closed after the size check: report it as mmap would (EBADF).
            Marshal.SetLastPInvokeError(LibC.EBADF);
            return LibC.MAP_FAILED;
        }
    }
}
