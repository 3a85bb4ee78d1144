using Microsoft.Win32.SafeHandles;
using Pmem2.Internal;

namespace Pmem2;

/// <summary>
/// A directory opened once (<c>O_RDONLY|O_DIRECTORY|O_CLOEXEC</c>) whose entries are then reached only
/// through its descriptor: <c>openat</c> with <c>O_NOFOLLOW</c>, <c>fstatat</c> with
/// <c>AT_SYMLINK_NOFOLLOW</c>, <c>renameat2</c>, <c>unlinkat</c>. A name is one path component (no
/// <c>/</c>), so nothing is ever resolved through a symbolic link or a re-resolved path: swapping an
/// entry for a symlink makes the open fail with ELOOP instead of following it out of the directory.
/// The descriptor is owned by a <see cref="SafeFileHandle"/>; every call holds a reference on it, so a
/// concurrent <see cref="Dispose"/> cannot recycle the descriptor number under a call.
/// Failures throw <see cref="Pmem2Exception"/> with the negated errno (ENOENT -2, ELOOP -40, EEXIST
/// -17, EROFS -30, EACCES -13, ENOSPC -28, EIO -5), as libpmem2 reports system-call failures.
/// </summary>
public sealed class Pmem2Directory : IDisposable
{
    private readonly SafeFileHandle _handle;

    private Pmem2Directory(SafeFileHandle handle, string path)
    {
        _handle = handle;
        Path = path;
    }

    /// <summary>The path the directory was opened with (for messages; never used to reach entries).</summary>
    public string Path { get; }

    /// <summary>The directory descriptor.</summary>
    public SafeFileHandle Handle => _handle;

    /// <summary>Opens <paramref name="path"/> as a directory (the path itself may go through symlinks).</summary>
    public static Pmem2Directory Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        PlatformGuard.EnsureSupported();
        return new Pmem2Directory(DirectoryCalls.OpenDirectory(path), path);
    }

    /// <summary>
    /// Opens the entry <paramref name="name"/> with <c>O_NOFOLLOW|O_CLOEXEC</c> (read-write, or read-only).
    /// A symbolic link fails with ELOOP (-40), a missing entry with ENOENT (-2).
    /// </summary>
    public SafeFileHandle OpenFile(string name, bool writable = true)
    {
        DirectoryCalls.CheckName(name);
        return DirectoryCalls.OpenAt(_handle, name, (writable ? DirectoryCalls.ReadWrite : DirectoryCalls.ReadOnly), 0);
    }

    /// <summary>
    /// Creates <paramref name="name"/> exclusively (<c>O_CREAT|O_EXCL|O_NOFOLLOW|O_RDWR|O_CLOEXEC</c>) with
    /// <paramref name="mode"/> (filtered by the umask); an existing entry, symlinks included, fails with EEXIST (-17).
    /// </summary>
    public SafeFileHandle CreateFile(string name, UnixFileMode mode)
    {
        DirectoryCalls.CheckName(name);
        return DirectoryCalls.OpenAt(_handle, name, DirectoryCalls.CreateExclusive, (int)mode);
    }

    /// <summary>fstatat without following a final symlink; null when the entry does not exist.</summary>
    public Pmem2FileStatus? TryGetStatus(string name)
    {
        DirectoryCalls.CheckName(name);
        return DirectoryCalls.StatAt(_handle, name);
    }

    /// <summary>
    /// Renames <paramref name="from"/> to <paramref name="to"/> inside this directory with
    /// <c>renameat2(RENAME_NOREPLACE)</c>: an existing <paramref name="to"/> fails with EEXIST (-17).
    /// </summary>
    public void RenameNoReplace(string from, string to)
    {
        DirectoryCalls.CheckName(from);
        DirectoryCalls.CheckName(to);
        DirectoryCalls.RenameNoReplace(_handle, from, to);
    }

    /// <summary>unlinkat of a non-directory entry (a symlink itself is removed, never its target).</summary>
    public void Delete(string name)
    {
        DirectoryCalls.CheckName(name);
        DirectoryCalls.UnlinkAt(_handle, name);
    }

    /// <summary>fsync of the directory: makes created, renamed and removed entries durable.</summary>
    public void Sync() => DirectoryCalls.Fsync(_handle, "fsync");

    /// <summary>
    /// The names in the directory (no <c>.</c>/<c>..</c>), read through the descriptor
    /// (<c>/proc/self/fd/N</c>), so a directory renamed or replaced since <see cref="Open"/> is not consulted.
    /// </summary>
    public List<string> EnumerateNames()
    {
        var added = false;
        _handle.DangerousAddRef(ref added);
        try
        {
            var fd = _handle.DangerousGetHandle().ToInt32();
            var names = new List<string>();
            foreach (var entry in Directory.EnumerateFileSystemEntries($"/proc/self/fd/{fd}"))
            {
                names.Add(System.IO.Path.GetFileName(entry));
            }

            return names;
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }
    }

    /// <inheritdoc />
    public void Dispose() => _handle.Dispose();
}
