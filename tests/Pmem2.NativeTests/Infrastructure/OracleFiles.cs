using Microsoft.Win32.SafeHandles;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>
/// Shared fixture: one temporary directory (on the default temp file system, ext4 here) holding one
/// sparse file per grid size, each opened once read-write and once read-only. Created once per test run
/// and reused by every slice of the grid.
/// </summary>
public sealed class OracleFiles : IDisposable
{
    public const ulong KiB = 1024;
    public const ulong MiB = 1024 * KiB;

    /// <summary>The file sizes of the grid: empty, smaller than a page, one byte short of 16 MiB, 16 MiB, 16 MiB + a page.</summary>
    public static readonly ulong[] GridSizes = [0, 3 * KiB, 16 * MiB - 1, 16 * MiB, 16 * MiB + 4 * KiB];

    private readonly Dictionary<ulong, GridFile> _files = [];

    public OracleFiles()
    {
        Directory = Path.Combine(Path.GetTempPath(), $"pmem2-oracle-{Environment.ProcessId}-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(Directory);
        foreach (var size in GridSizes)
        {
            var path = Path.Combine(Directory, $"grid-{size}");
            using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                fs.SetLength((long)size);
            }

            var rw = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            var ro = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            _files[size] = new GridFile(path, size, rw, ro);
        }
    }

    /// <summary>The fixture's private temporary directory (deleted on dispose).</summary>
    public string Directory { get; }

    public GridFile this[ulong size] => _files[size];

    /// <summary>A fresh path inside <see cref="Directory"/>.</summary>
    public string NewPath(string name) => Path.Combine(Directory, $"{name}-{Guid.NewGuid():N}");

    public void Dispose()
    {
        foreach (var f in _files.Values)
        {
            f.ReadWrite.Dispose();
            f.ReadOnly.Dispose();
        }

        // The fixture directory, and its twin on tmpfs used by the mem differential (MemDirectory).
        foreach (var dir in new[] { Directory, Path.Combine("/dev/shm", Path.GetFileName(Directory)) })
        {
            try
            {
                if (System.IO.Directory.Exists(dir))
                {
                    System.IO.Directory.Delete(dir, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }
    }
}

public sealed record GridFile(string Path, ulong Size, SafeFileHandle ReadWrite, SafeFileHandle ReadOnly)
{
    public int Fd(bool readOnly) => (int)(readOnly ? ReadOnly : ReadWrite).DangerousGetHandle();
}
