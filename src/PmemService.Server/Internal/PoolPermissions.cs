using Microsoft.Extensions.Logging;

namespace PmemService.Server.Internal;

/// <summary>Start-up check of the pool directory's mode: warns when others can write it, or enter it.</summary>
internal static class PoolPermissions
{
    private const UnixFileMode WriteByOthers = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;
    private const UnixFileMode OpenToOthers = UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>What the check found (tests).</summary>
    [Flags]
    public enum Finding
    {
        None = 0,
        WritableByOthers = 1,
        OpenToOthers = 2,
    }

    public static Finding Check(string poolPath, ILogger logger)
    {
        if (OperatingSystem.IsWindows())
        {
            return Finding.None;
        }

        var mode = File.GetUnixFileMode(poolPath);
        var text = "0" + Convert.ToString((int)mode & 0xFFF, 8);
        var finding = Finding.None;
        if ((mode & WriteByOthers) != 0)
        {
            // Writers other than the service can unlink, rename or plant entries (the sticky bit
            // keeps them from removing the service's files, not from filling the pool).
            PmemLog.PoolWritableByOthers(logger, poolPath, text);
            finding |= Finding.WritableByOthers;
        }

        if ((mode & OpenToOthers) != 0)
        {
            PmemLog.PoolOpenToOthers(logger, poolPath, text);
            finding |= Finding.OpenToOthers;
        }

        return finding;
    }
}
