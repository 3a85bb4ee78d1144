using Microsoft.Win32.SafeHandles;
using Pmem2.Internal;

namespace Pmem2;

/// <summary>
/// File-level durability helpers for code that creates files it will map with <see cref="Pmem2Map"/>:
/// full block allocation without a sparse fallback, and directory fsync after a rename.
/// Both throw <see cref="Pmem2Exception"/> with the negated errno (<see cref="Pmem2Exception.Errno"/>),
/// as libpmem2 reports system-call failures.
/// </summary>
public static class Pmem2Files
{
    /// <summary>
    /// Allocates every block of <c>[0, length)</c> of the file and extends its size to at least
    /// <paramref name="length"/>: <c>fallocate(fd, 0, 0, length)</c>, retried on EINTR.
    /// </summary>
    /// <remarks>
    /// A store through a mapping into a hole of a sparse file must allocate a block at page-fault
    /// time; when the filesystem is full that fault cannot be served and the process gets SIGBUS
    /// (on a DAX filesystem there is no page cache to absorb it either). Allocating up front turns
    /// that crash into an error at creation time. Unlike <c>posix_fallocate(3)</c> and .NET's
    /// <c>preallocationSize</c>, a filesystem without fallocate support is not silently accepted
    /// (no write-zeroes emulation, no sparse file): it fails with EOPNOTSUPP (-95).
    /// A <paramref name="length"/> of 0 allocates nothing and succeeds.
    /// </remarks>
    /// <param name="handle">A descriptor open for writing on a regular file.</param>
    /// <param name="length">Bytes to allocate from offset 0; at most <see cref="long.MaxValue"/>.</param>
    /// <exception cref="Pmem2Exception">"fallocate: strerror" with the negated errno, e.g.
    /// ENOSPC (-28), EFBIG (-27), EOPNOTSUPP (-95), EBADF (-9).</exception>
    public static void Allocate(SafeFileHandle handle, ulong length)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, (ulong)long.MaxValue);
        PlatformGuard.EnsureSupported();
        FileDurability.Allocate(handle, (long)length);
    }

    /// <summary>
    /// Writes zeros over <c>[0, length)</c> of the file, one 4 KiB <c>pwrite</c> at a time, so the file's
    /// extents are <i>written</i> rather than the unwritten ones <see cref="Allocate"/> leaves. Like
    /// <see cref="Allocate"/>, it does not fsync: the caller's fsync (before a rename that publishes the
    /// file) makes the zeros and the extents durable.
    /// </summary>
    /// <remarks>
    /// Why: on ext4 and xfs the first write-back of a page in an unwritten extent converts the extent,
    /// so the first msync of each page of a freshly allocated file also writes extent and inode metadata
    /// (on a DAX filesystem the first MAP_SYNC write fault of each page commits it instead). Measured at
    /// PAGE through the service (<c>PmemService.Benchmarks first-touch</c>): the first persisted 4 KiB write
    /// of a page took 1.5x a rewrite after <see cref="Allocate"/> alone, 1.0x after this.
    /// Why 4 KiB writes: a buffered write allocates page-cache folios as large as the write, and a later
    /// 4 KiB msync through a mapping of a large folio writes back the whole folio (measured with 1 MiB writes:
    /// 2.9 ms per persisted 4 KiB write against 0.5 ms). 4 KiB writes leave single-page folios, cached and
    /// clean, so the mapping's first touch of a page is a minor fault with no read (dropping them instead
    /// would make each first touch read the page back from the disk). pwrite of zeros rather than
    /// <c>FALLOC_FL_ZERO_RANGE</c> (which leaves unwritten extents) or <c>FALLOC_FL_WRITE_ZEROES</c> (needs
    /// the device's write-zeroes offload). Checks <paramref name="cancellationToken"/> before each write.
    /// Not part of libpmem2.
    /// </remarks>
    /// <param name="handle">A descriptor open for writing on a regular file, not mapped yet.</param>
    /// <param name="length">Bytes from offset 0; at most <see cref="long.MaxValue"/>.</param>
    /// <param name="cancellationToken">Stops between two writes (the bytes written so far stay).</param>
    /// <exception cref="Pmem2Exception">"pwrite: strerror" with the negated errno (ENOSPC, EIO, EBADF, ...).</exception>
    /// <exception cref="OperationCanceledException">Cancelled between two writes.</exception>
    public static void WriteZeros(SafeFileHandle handle, ulong length, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, (ulong)long.MaxValue);
        PlatformGuard.EnsureSupported();
        FileDurability.WriteZeros(handle, (long)length, cancellationToken);
    }

    /// <summary>
    /// Makes the entries of a directory durable: opens it with <c>O_RDONLY|O_DIRECTORY|O_CLOEXEC</c>
    /// and fsyncs it.
    /// </summary>
    /// <remarks>
    /// fsync of a file makes its data and inode durable, not the directory entry that names it.
    /// After creating or renaming a file into place, a power loss before the directory's own
    /// metadata reaches the media can make the new name vanish (or the old one reappear), so a
    /// creation acknowledged to a client must be followed by an fsync of the containing directory.
    /// </remarks>
    /// <param name="directoryPath">The directory to sync.</param>
    /// <exception cref="Pmem2Exception">"open \"path\": strerror" when the directory cannot be
    /// opened (ENOENT -2, ENOTDIR -20, EACCES -13), "fsync: strerror" when the sync fails (EIO -5).</exception>
    public static void SyncDirectory(string directoryPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(directoryPath);
        PlatformGuard.EnsureSupported();
        FileDurability.SyncDirectory(directoryPath);
    }

    /// <summary>fstat of an open descriptor: identity (st_dev, st_ino), size, mode, link count.</summary>
    /// <exception cref="Pmem2Exception">"fstat: strerror" with the negated errno.</exception>
    public static Pmem2FileStatus GetStatus(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        PlatformGuard.EnsureSupported();
        return DirectoryCalls.FStat(handle);
    }

    /// <summary>lstat of a path (a final symlink is described, not followed); null when it does not exist.</summary>
    /// <exception cref="Pmem2Exception">"lstat \"path\": strerror" for errors other than ENOENT.</exception>
    public static Pmem2FileStatus? TryGetStatus(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        PlatformGuard.EnsureSupported();
        return DirectoryCalls.LStat(path);
    }

    /// <summary>
    /// Whether the kernel really maps the file with <c>MAP_SHARED_VALIDATE|MAP_SYNC</c> (a DAX filesystem):
    /// one mmap of <paramref name="length"/> bytes at a kernel-chosen address, unmapped at once. Unlike
    /// <see cref="Pmem2Map.IsMapSync"/>, <c>PMEM2_FORCE_GRANULARITY</c> cannot make this true, so it is
    /// the check to use when a deployment <i>requires</i> DAX.
    /// </summary>
    /// <exception cref="Pmem2Exception">"mmap MAP_SYNC: strerror" for failures other than EINVAL/EOPNOTSUPP.</exception>
    public static bool HasMapSync(SafeFileHandle handle, ulong length)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentOutOfRangeException.ThrowIfZero(length);
        PlatformGuard.EnsureSupported();
        return DirectoryCalls.ProbeMapSync(handle, (nuint)length);
    }
}
