using Grpc.Core;
using Microsoft.Win32.SafeHandles;
using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>
/// The pool directory, opened once as a descriptor (<see cref="Pmem2Directory"/>): every lookup,
/// open, create, rename and delete of a region file goes through it with <c>O_NOFOLLOW</c> /
/// <c>AT_SYMLINK_NOFOLLOW</c>, never through a re-resolved path, so a symlink swapped into the pool
/// cannot redirect a call to a file outside it. Owns the durable create (temp name, fallocate,
/// fsync, rename without replace, directory fsync) and the durable delete (unlink + directory
/// fsync), and turns the kernel's errors into the service's statuses.
/// </summary>
internal sealed class PoolDirectory : IDisposable
{
    public const string CreatingPrefix = ".creating-";
    public const string ProbePrefix = ".probe-";
    public const string LockFileName = ".pmem-service.lock";

    /// <summary>Default mode of region files: read-write for the service's user only.</summary>
    public const UnixFileMode DefaultRegionFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Default mode of a pool directory the service creates: its user only.</summary>
    public const UnixFileMode DefaultDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private const int EPERM = 1;
    private const int ENOENT = 2;
    private const int EACCES = 13;
    private const int EEXIST = 17;
    private const int EISDIR = 21;
    private const int EFBIG = 27;
    private const int ENOSPC = 28;
    private const int EROFS = 30;
    private const int ELOOP = 40;
    private const int EDQUOT = 122;
    private const int EOPNOTSUPP = 95;

    private readonly Pmem2Directory _directory;

    public PoolDirectory(string path, UnixFileMode directoryMode = DefaultDirectoryMode, UnixFileMode regionFileMode = DefaultRegionFileMode, bool zeroFillOnCreate = false)
    {
        ZeroFillOnCreate = zeroFillOnCreate;
        // Created with its mode (mkdir(2) with the mode, filtered by the umask), never chmod'ed after;
        // an existing pool keeps its mode (the start-up check warns when others can write it).
        // Missing parents get the same mode.
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, directoryMode);
        }

        Path = path;
        RegionFileMode = regionFileMode;
        _directory = Pmem2Directory.Open(path);
    }

    /// <summary>Whether <see cref="CreateRegion"/> writes zeros over the allocated file (PmemService:ZeroFillOnCreate).</summary>
    public bool ZeroFillOnCreate { get; }

    /// <summary>Mode region files are created with (0600, or 0640 with PoolGroupAccess).</summary>
    public UnixFileMode RegionFileMode { get; }

    public string Path { get; }

    /// <summary>The status of <paramref name="name"/> (not following a symlink), or null when absent.</summary>
    public Pmem2FileStatus? Stat(string name)
    {
        try
        {
            return _directory.TryGetStatus(name);
        }
        catch (Pmem2Exception e)
        {
            throw Error(e, name, "look up");
        }
    }

    /// <summary>
    /// The region file's status, null when absent; a symlink or any other non-regular entry is
    /// FAILED_PRECONDITION <c>REGION_NOT_MAPPABLE</c>.
    /// </summary>
    public Pmem2FileStatus? LookupRegion(string name) => RequireRegular(name, Stat(name));

    /// <summary><paramref name="status"/> when it is a regular file or absent; REGION_NOT_MAPPABLE otherwise.</summary>
    public static Pmem2FileStatus? RequireRegular(string name, Pmem2FileStatus? status)
    {
        if (status is { } s && !s.IsRegularFile)
        {
            throw NotMappable(name, s.IsSymbolicLink ? "is a symbolic link" : "is not a regular file");
        }

        return status;
    }

    /// <summary>Opens an existing region file read-write (or read-only, for direct leases), never following a symlink; returns it with its fstat.</summary>
    public (SafeFileHandle Handle, Pmem2FileStatus Status) OpenRegion(string name, bool writable = true)
    {
        SafeFileHandle handle;
        try
        {
            handle = _directory.OpenFile(name, writable);
        }
        catch (Pmem2Exception e)
        {
            throw Error(e, name, "open");
        }

        try
        {
            var status = Pmem2Files.GetStatus(handle);
            if (!status.IsRegularFile)
            {
                throw NotMappable(name, "is not a regular file");
            }

            return (handle, status);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates a fully allocated region file durably and returns it open: exclusive create of a
    /// temporary name with mode 0600, <see cref="Pmem2Files.Allocate"/> (fallocate, no sparse
    /// fallback), fsync, <c>renameat2(RENAME_NOREPLACE)</c> to the region's name, fsync of the pool
    /// directory. The returned descriptor is the created inode itself, so the mapping is made of
    /// exactly the file that was created (never a file re-resolved by name). On failure nothing is
    /// left under the region's name. <paramref name="acl"/> (owner and access list, <see cref="RegionAcl"/>) is
    /// set as <c>user.pmem.acl</c> on the temporary file before its fsync and rename, so the region never
    /// appears without it; a filesystem without user xattrs fails the create when <paramref name="aclRequired"/>.
    /// </summary>
    public (SafeFileHandle Handle, Pmem2FileStatus Status) CreateRegion(string name, ulong size, byte[]? acl = null, bool aclRequired = false, CancellationToken cancellationToken = default)
    {
        var temp = $"{CreatingPrefix}{name}-{Guid.NewGuid():N}";
        SafeFileHandle handle;
        try
        {
            handle = _directory.CreateFile(temp, RegionFileMode);
        }
        catch (Pmem2Exception e)
        {
            throw CreateError(e, name, size);
        }

        var renamed = false;
        try
        {
            try
            {
                Pmem2Files.Allocate(handle, size);
                if (ZeroFillOnCreate)
                {
                    // Written extents and no large folios left in the page cache (see Pmem2Files.WriteZeros); the
                    // FlushToDisk below makes them durable before the rename.
                    Pmem2Files.WriteZeros(handle, size, cancellationToken);
                }

                if (acl is not null)
                {
                    try
                    {
                        Pmem2FileAttributes.Set(handle, RegionAcl.AttributeName, acl); // fsetxattr + fsync
                    }
                    catch (Pmem2Exception e) when (e.Errno == EOPNOTSUPP && !aclRequired)
                    {
                        // Shared mode on a filesystem without user xattrs: the region simply has no recorded owner.
                    }
                    catch (Pmem2Exception e) when (e.Errno == EOPNOTSUPP)
                    {
                        throw RegionAccessControl.MetadataNotSupported(name, e);
                    }
                }

                RandomAccess.FlushToDisk(handle);
            }
            catch (Pmem2Exception e)
            {
                throw CreateError(e, name, size);
            }
            catch (IOException e)
            {
                throw PoolSpaceExhausted(name, size, e);
            }

            try
            {
                _directory.RenameNoReplace(temp, name);
                renamed = true;
            }
            catch (Pmem2Exception e) when (e.Errno == EEXIST)
            {
                throw new PmemServiceException(StatusCode.AlreadyExists, PmemErrorReasons.RegionAlreadyExists,
                    $"A file named '{name}' appeared in the pool while the region was being created.", "name", e).With("region", name);
            }
            catch (Pmem2Exception e)
            {
                throw Error(e, name, "rename");
            }

            try
            {
                _directory.Sync();
            }
            catch (Pmem2Exception e)
            {
                // The name may not be durable: fail the call and leave no region the caller does not know about.
                throw Error(e, name, "fsync the pool directory after creating");
            }

            return (handle, Pmem2Files.GetStatus(handle));
        }
        catch
        {
            handle.Dispose();
            TryDelete(renamed ? name : temp);
            throw;
        }
    }

    /// <summary>Unlinks the region file (the name, never a symlink's target).</summary>
    public void Unlink(string name)
    {
        try
        {
            _directory.Delete(name);
        }
        catch (Pmem2Exception e)
        {
            throw Error(e, name, "delete");
        }
    }

    /// <summary>fsyncs the directory after an unlink, so an acknowledged delete cannot come back.</summary>
    public void SyncAfterDelete(string name)
    {
        try
        {
            _directory.Sync();
        }
        catch (Pmem2Exception e)
        {
            throw Error(e, name, "fsync the pool directory after deleting");
        }
    }

    /// <summary>Best-effort unlink (cleanup paths); false when it failed.</summary>
    public bool TryDelete(string name)
    {
        try
        {
            _directory.Delete(name);
            return true;
        }
        catch (Pmem2Exception)
        {
            return false;
        }
    }

    /// <summary>Names in the pool (all entries; the caller filters).</summary>
    public List<string> Names() => _directory.EnumerateNames();

    /// <summary>Creates a small, fully allocated, exclusive probe file; the caller deletes it.</summary>
    public (SafeFileHandle Handle, string Name) CreateProbeFile(ulong size)
    {
        var name = $"{ProbePrefix}{Guid.NewGuid():N}";
        var handle = _directory.CreateFile(name, RegionFileMode);
        try
        {
            Pmem2Files.Allocate(handle, size);
            return (handle, name);
        }
        catch
        {
            handle.Dispose();
            TryDelete(name);
            throw;
        }
    }

    /// <summary>
    /// The pool lock: an exclusive flock on <see cref="LockFileName"/> (one service per pool). On a
    /// read-only pool the file is opened read-only (flock works on any open file).
    /// </summary>
    public SafeFileHandle AcquireLock(out bool readOnly)
    {
        readOnly = false;
        var path = System.IO.Path.Combine(Path, LockFileName);
        try
        {
            try
            {
                return File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException && IsReadOnlyFileSystem())
            {
                readOnly = true;
                return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.None);
            }
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw new InvalidOperationException(
                $"Another PmemService already uses the pool '{Path}' (it holds {path}); each pool needs exactly one service.", e);
        }
    }

    private bool IsReadOnlyFileSystem()
    {
        var name = $"{ProbePrefix}ro-{Guid.NewGuid():N}";
        try
        {
            _directory.CreateFile(name, RegionFileMode).Dispose();
            TryDelete(name);
            return false;
        }
        catch (Pmem2Exception e)
        {
            return e.Errno == EROFS;
        }
    }

    /// <summary>Maps a kernel error on the pool to a status naming the region and the operation.</summary>
    public PmemServiceException Error(Pmem2Exception e, string name, string operation)
    {
        switch (e.Errno)
        {
            case ENOENT:
                return PmemServiceException.NotFound(name);
            case ELOOP:
                return NotMappable(name, "is a symbolic link");
            case EISDIR:
                return NotMappable(name, "is a directory");
            case EROFS:
                return new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.PoolReadOnly,
                    $"Cannot {operation} region '{name}': the pool '{Path}' is on a read-only filesystem ({e.Message}).", inner: e)
                    .With("region", name).With("pool", Path);
            case EACCES or EPERM:
                return new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.AccessDenied,
                    $"Cannot {operation} region '{name}': permission denied on the pool '{Path}' ({e.Message}).", inner: e)
                    .With("region", name).With("pool", Path);
            default:
                var mapped = ErrorMapping.Map(e);
                return mapped.With("region", name);
        }
    }

    private PmemServiceException CreateError(Pmem2Exception e, string name, ulong size) => e.Errno switch
    {
        ENOSPC or EFBIG or EDQUOT => PoolSpaceExhausted(name, size, e),
        EOPNOTSUPP => new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.PoolNotPreallocatable,
            $"The pool's filesystem cannot preallocate region files (fallocate: {e.Message}); a sparse region could crash the service with SIGBUS when the filesystem fills up.", inner: e)
            .With("region", name).With("pool", Path),
        _ => Error(e, name, "create"),
    };

    private static PmemServiceException PoolSpaceExhausted(string name, ulong size, Exception e) =>
        new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.PoolSpaceExhausted,
            $"The pool has no room for {size} bytes: {e.Message}", "size", e).With("region", name).With("size", size);

    private static PmemServiceException NotMappable(string name, string why) =>
        new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionNotMappable,
            $"Region '{name}' {why}; only regular files in the pool are regions.").With("region", name);

    public void Dispose() => _directory.Dispose();
}
