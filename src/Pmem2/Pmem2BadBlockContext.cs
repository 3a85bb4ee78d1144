using System.Runtime.InteropServices;
using Pmem2.Internal;
using Pmem2.Internal.BadBlocks;
using Pmem2.Internal.Interop;

namespace Pmem2;

/// <summary>
/// libpmem2's bad block iterator (pmem2_badblock_context_new / _next / _clear / _delete,
/// badblocks_ndctl.c) over sysfs instead of libndctl. For a regular file on an fsdax namespace the
/// bad ranges of the namespace's block device (/sys/block/pmemX/badblocks) are intersected with the
/// file's FIEMAP extents and returned as file offsets rounded out to the filesystem block; for other
/// namespace modes the region's ranges (/sys/bus/nd/devices/regionN/badblocks) are clipped to the
/// namespace first. A device DAX reports the region's ranges relative to the namespace. A source that
/// is not on an NVDIMM namespace has no bad blocks.
/// </summary>
/// <remarks>
/// The context reads the bad ranges once, when <see cref="Create(Pmem2Source)"/> runs (libndctl caches them per
/// context too); create a new context to see ranges that appeared or were cleared since. The extents
/// of a regular file are also read once. The context does not own the source.
/// </remarks>
public sealed class Pmem2BadBlockContext : IDisposable
{
    private const ulong Sector = 512;

    private readonly Pmem2Source _source;
    private readonly NdNamespace? _namespace;
    private readonly bool _hasDevice;
    private readonly List<Pmem2BadBlock> _raw = [];
    private readonly FileExtent[]? _extents;
    private readonly ulong _blockSize;
    private readonly ulong _namespaceResource;
    private int _nextRaw;
    private int _firstExtent;
    private Pmem2BadBlock _lastBadBlock;
    private bool _disposed;

    private Pmem2BadBlockContext(Pmem2Source source, NdNamespace? ns, ulong namespaceResource, FileExtent[]? extents, ulong blockSize, bool hasDevice = false)
    {
        _source = source;
        _namespace = ns;
        _hasDevice = hasDevice || ns is not null;
        _namespaceResource = namespaceResource;
        _extents = extents;
        _blockSize = blockSize;
    }

    /// <summary>
    /// pmem2_badblock_context_new reading sysfs under <paramref name="sysfsRoot"/> instead of /sys (a
    /// container that bind-mounts the host's sysfs elsewhere; a test tree). Only this call is affected.
    /// </summary>
    public static Pmem2BadBlockContext Create(Pmem2Source source, string sysfsRoot)
    {
        ArgumentException.ThrowIfNullOrEmpty(sysfsRoot);
        var previous = DeviceDax.SysRoot;
        DeviceDax.SysRoot = sysfsRoot;
        try
        {
            return Create(source);
        }
        finally
        {
            DeviceDax.SysRoot = previous;
        }
    }

    /// <summary>pmem2_badblock_context_new.</summary>
    /// <exception cref="Pmem2Exception">Anonymous source: NOSUPP "Anonymous source does not support bad
    /// blocks"; unreadable namespace bounds: CANNOT_READ_BOUNDS; FIEMAP failure: -errno.</exception>
    public static unsafe Pmem2BadBlockContext Create(Pmem2Source source)
    {
        ArgumentNullException.ThrowIfNull(source);
        PlatformGuard.EnsureSupported();
        source.ThrowIfDisposed();
        var handle = source.Handle ?? throw new Pmem2Exception(Pmem2ErrorCode.NoSupp, "Anonymous source does not support bad blocks");

        Stat st = default;
        if (LibC.fstat(handle, &st) != 0)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), $"fstat {handle.DangerousGetHandle()}");
        }

        var ns = NdNamespace.Find(source);
        if (ns is null)
        {
            return new Pmem2BadBlockContext(source, null, 0, null, 0);
        }

        var devdax = source.Type == Pmem2SourceType.DeviceDax;
        ulong resource = 0;
        List<Pmem2BadBlock> raw;
        if (ns.Mode == NdNamespaceMode.FsDax)
        {
            raw = ns.NamespaceBadBlocks().Select(s => new Pmem2BadBlock(s.Offset * Sector, s.Length * Sector)).ToList();
        }
        else
        {
            var (begin, size, regionResource) = ns.Bounds();
            var end = begin + size - 1;
            resource = begin + regionResource;
            raw = [];
            foreach (var s in ns.RegionBadBlocks())
            {
                var bbBegin = s.Offset * Sector;
                var bbEnd = bbBegin + (s.Length * Sector) - 1;
                if (bbBegin > end || begin > bbEnd)
                {
                    continue;
                }

                var b = Math.Max(bbBegin, begin);
                var e = Math.Min(bbEnd, end);
                raw.Add(new Pmem2BadBlock(b - begin, e - b + 1));
            }
        }

        FileExtent[]? extents = null;
        ulong blockSize = 0;
        if (!devdax)
        {
            (blockSize, extents) = Extents.Get(handle, deviceDax: false);
        }

        var ctx = new Pmem2BadBlockContext(source, ns, resource, extents, blockSize);
        ctx._raw.AddRange(raw);
        if (raw.Count > 0)
        {
            Pmem2EventSource.Log.BadBlocksFound(raw.Count, ns.Mode.ToString(), ns.RegionDirectory);
        }

        return ctx;
    }

    /// <summary>pmem2_badblock_next: the next bad range, or false (PMEM2_E_NO_BAD_BLOCK_FOUND) when
    /// there are no more.</summary>
    public bool TryGetNext(out Pmem2BadBlock badBlock)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        badBlock = default;
        if (!_hasDevice)
        {
            return false;
        }

        if (_extents is null)
        {
            return NextRaw(out badBlock);
        }

        // A bad range may span several extents: it is kept in _lastBadBlock and checked again from
        // the extent after the one that matched.
        while (true)
        {
            Pmem2BadBlock bb;
            if (_lastBadBlock.Length != 0)
            {
                bb = _lastBadBlock;
                _lastBadBlock = default;
            }
            else if (!NextRaw(out bb))
            {
                return false;
            }

            var bbBegin = bb.Offset;
            var bbEnd = bb.Offset + bb.Length - 1;
            for (var e = _firstExtent; e < _extents.Length; e++)
            {
                var ext = _extents[e];
                var extBegin = ext.Physical;
                var extEnd = ext.Physical + ext.Length - 1;
                if (bbBegin > extEnd || extBegin > bbEnd)
                {
                    continue;
                }

                if (bbEnd > extEnd && e + 1 < _extents.Length)
                {
                    _firstExtent = e + 1;
                    _lastBadBlock = bb;
                }
                else
                {
                    _firstExtent = 0;
                    _lastBadBlock = default;
                }

                var begin = Math.Max(bbBegin, extBegin);
                var end = Math.Min(bbEnd, extEnd);
                var length = end - begin + 1;
                var offset = begin + ext.Logical - ext.Physical;
                var misalign = offset & (_blockSize - 1);
                offset -= misalign;
                length += misalign;
                length = (length + _blockSize - 1) & ~(_blockSize - 1);
                badBlock = new Pmem2BadBlock(offset, length);
                return true;
            }

            _firstExtent = 0;
            _lastBadBlock = default;
        }
    }

    /// <summary>pmem2_badblock_next, throwing NO_BAD_BLOCK_FOUND when there are no more ("Cannot find
    /// any matching device, no bad blocks found" when the source is on no NVDIMM namespace).</summary>
    public Pmem2BadBlock Next() =>
        TryGetNext(out var bb) ? bb : throw new Pmem2Exception(Pmem2ErrorCode.NoBadBlockFound,
            !_hasDevice ? "Cannot find any matching device, no bad blocks found" : "no more bad blocks");

    /// <summary>Whether the source is on an NVDIMM namespace whose bad blocks were read (false: no
    /// matching device, so no bad blocks can be known).</summary>
    public bool HasDevice => _hasDevice;

    /// <summary>Test seam: a context over given namespace-relative bad ranges and file extents (the
    /// extent walk of <see cref="TryGetNext"/> without sysfs or FIEMAP).</summary>
    internal static Pmem2BadBlockContext ForExtents(Pmem2Source source, IEnumerable<Pmem2BadBlock> ranges, FileExtent[]? extents, ulong blockSize)
    {
        var ctx = new Pmem2BadBlockContext(source, null, 0, extents, blockSize, hasDevice: true);
        ctx._raw.AddRange(ranges);
        return ctx;
    }

    /// <summary>Every remaining bad range (pmem2_badblock_next until NO_BAD_BLOCK_FOUND).</summary>
    public IReadOnlyList<Pmem2BadBlock> ReadAll()
    {
        var list = new List<Pmem2BadBlock>();
        while (list.Count < 1_000_000 && TryGetNext(out var bb))
        {
            list.Add(bb);
        }

        return list;
    }

    /// <summary>
    /// pmem2_badblock_clear. Regular file: the blocks are deallocated
    /// (<c>fallocate(PUNCH_HOLE|KEEP_SIZE)</c>) and allocated again (<c>fallocate(KEEP_SIZE)</c>), so
    /// the filesystem maps fresh, zeroed blocks there: the range reads as zeros afterwards. Device DAX:
    /// the bus's ARS clear-error command (ND_CMD_ARS_CAP then ND_CMD_CLEAR_ERROR on /dev/ndctlN) for
    /// the range's physical address.
    /// </summary>
    /// <exception cref="Pmem2Exception">"fallocate: strerror" with -errno; device DAX without a usable
    /// bus control device: NOSUPP (libpmem2 returns -1 from libndctl there); a partial clear: IO_FAIL.</exception>
    public void Clear(Pmem2BadBlock badBlock)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _source.ThrowIfDisposed();
        var handle = _source.Handle ?? throw new Pmem2Exception(Pmem2ErrorCode.InvalidFileType, "bad blocks of anonymous memory cannot be cleared");
        if (_source.Type == Pmem2SourceType.DeviceDax)
        {
            ClearDeviceDax(badBlock);
            return;
        }

        if (badBlock.Offset > long.MaxValue)
        {
            Errors.Throw(Pmem2ErrorCode.OffsetOutOfRange, "bad block's offset is greater than INT64_MAX");
        }

        if (badBlock.Length > long.MaxValue)
        {
            Errors.Throw(Pmem2ErrorCode.LengthOutOfRange, "bad block's length is greater than INT64_MAX");
        }

        if (LibC.fallocate(handle, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, (long)badBlock.Offset, (long)badBlock.Length) != 0)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), "fallocate");
        }

        if (LibC.fallocate(handle, LibC.FALLOC_FL_KEEP_SIZE, (long)badBlock.Offset, (long)badBlock.Length) != 0)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), "fallocate");
        }

        Pmem2EventSource.Log.BadBlockCleared((long)badBlock.Offset, (long)badBlock.Length);
    }

    /// <summary>pmem2_badblock_context_delete.</summary>
    public void Dispose() => _disposed = true;

    private bool NextRaw(out Pmem2BadBlock bb)
    {
        if (_nextRaw < _raw.Count)
        {
            bb = _raw[_nextRaw++];
            return true;
        }

        bb = default;
        return false;
    }

    private unsafe void ClearDeviceDax(Pmem2BadBlock badBlock)
    {
        var bus = _namespace?.Bus;
        var control = bus is null ? null : Path.Combine("/dev", "ndctl" + bus["ndbus".Length..]);
        Microsoft.Win32.SafeHandles.SafeFileHandle? fd = control is null ? null : LibC.open(control, LibC.O_RDWR | LibC.O_CLOEXEC, 0);
        try
        {
            if (fd is null || fd.IsInvalid)
            {
                var errno = fd is null ? LibC.ENOENT : Marshal.GetLastPInvokeError();
                throw new Pmem2Exception(Pmem2ErrorCode.NoSupp,
                    $"failed to create cmd (bus '{bus ?? "unknown"}'): {control ?? "no bus"}: {Errors.StrError(errno)}");
            }

            var address = badBlock.Offset + _namespaceResource;
            var cap = new NdCmdArsCap { address = address, length = badBlock.Length };
            if (LibC.ioctl(fd, LibC.ND_IOCTL_ARS_CAP, &cap) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw errno is LibC.ENOTTY or LibC.ENXIO or LibC.EOPNOTSUPP
                    ? new Pmem2Exception(Pmem2ErrorCode.NoSupp, $"failed to submit cmd (bus '{bus}'): {Errors.StrError(errno)}")
                    : Errors.FromErrno(errno, $"failed to submit cmd (bus '{bus}')");
            }

            if ((cap.status & 0xffff) != 0)
            {
                Errors.Throw(Pmem2ErrorCode.IoFail, "failed to get ars_cap range");
            }

            var clear = new NdCmdClearError { address = address, length = badBlock.Length };
            if (LibC.ioctl(fd, LibC.ND_IOCTL_CLEAR_ERROR, &clear) != 0)
            {
                Errors.ThrowErrno(Marshal.GetLastPInvokeError(), $"failed to submit cmd (bus '{bus}')");
            }

            if (clear.cleared != badBlock.Length)
            {
                Errors.Throw(Pmem2ErrorCode.IoFail, $"cleared {clear.cleared} out of {badBlock.Length} bad bytes");
            }

            Pmem2EventSource.Log.BadBlockCleared((long)badBlock.Offset, (long)badBlock.Length);
        }
        finally
        {
            fd?.Dispose();
        }
    }
}
