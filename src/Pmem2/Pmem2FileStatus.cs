namespace Pmem2;

/// <summary>
/// The parts of <c>struct stat</c> that identify a file and describe it: device + inode (the file's
/// identity, which a rename keeps and an unlink-and-recreate changes), size, type, mode, owner and
/// link count (0 once the last name is unlinked).
/// </summary>
/// <param name="Device">st_dev.</param>
/// <param name="Inode">st_ino.</param>
/// <param name="Size">st_size in bytes.</param>
/// <param name="Mode">st_mode (type and permission bits).</param>
/// <param name="Links">st_nlink.</param>
/// <param name="Uid">st_uid.</param>
public readonly record struct Pmem2FileStatus(ulong Device, ulong Inode, long Size, uint Mode, ulong Links, uint Uid)
{
    private const uint TypeMask = 0xF000;

    /// <summary>A regular file (S_IFREG).</summary>
    public bool IsRegularFile => (Mode & TypeMask) == 0x8000;

    /// <summary>A symbolic link (S_IFLNK; only seen by the no-follow lookups).</summary>
    public bool IsSymbolicLink => (Mode & TypeMask) == 0xA000;

    /// <summary>A socket (S_IFSOCK).</summary>
    public bool IsSocket => (Mode & TypeMask) == 0xC000;

    /// <summary>The permission bits (mode &amp; 07777).</summary>
    public UnixFileMode Permissions => (UnixFileMode)(Mode & 0xFFF);

    /// <summary>Whether <paramref name="other"/> is the same file (same st_dev and st_ino).</summary>
    public bool IsSameFile(in Pmem2FileStatus other) => Device == other.Device && Inode == other.Inode;
}
