using System.Globalization;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal;

/// <summary>
/// Device DAX facts read from sysfs (pmem2_utils_linux.c), without ndctl: recognition through
/// /sys/dev/char/M:m/subsystem, size from /sys/dev/char/M:m/size, alignment from the nearest
/// dax_region/align above the device, and the region for deep flush.
/// </summary>
internal static class DeviceDax
{
    private static readonly AsyncLocal<string?> s_sysRoot = new();

    /// <summary>Test seam: sysfs root (default "/sys"), flowing with the async context so parallel
    /// tests do not see each other's fake trees.</summary>
    internal static string SysRoot
    {
        get => s_sysRoot.Value ?? "/sys";
        set => s_sysRoot.Value = value;
    }

    /// <summary>Whether the character device <paramref name="rdev"/> is a device DAX: the basename of
    /// realpath(/sys/dev/char/M:m/subsystem) is "dax". realpath failures are -errno like libpmem2.</summary>
    public static bool IsDeviceDax(ulong rdev)
    {
        var spath = CharPath(rdev, "subsystem");
        var real = LibC.RealPath(spath, out var errno);
        if (real is null)
        {
            Errors.ThrowErrno(errno, $"realpath \"{spath}\"");
        }

        var slash = real.LastIndexOf('/');
        return slash >= 0 && real.AsSpan(slash + 1).SequenceEqual("dax");
    }

    /// <summary>pmem2_device_dax_size: /sys/dev/char/M:m/size (a number followed by a newline).</summary>
    public static ulong Size(ulong rdev)
    {
        var spath = CharPath(rdev, "size");
        string text;
        try
        {
            text = File.ReadAllText(spath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new Pmem2Exception(e is UnauthorizedAccessException ? (Pmem2ErrorCode)(-LibC.EACCES) : (Pmem2ErrorCode)(-2),
                $"open \"{spath}\": {e.Message}");
        }

        if (!text.EndsWith('\n') || !TryParseC(text[..^1], out var size))
        {
            throw new Pmem2Exception(Pmem2ErrorCode.InvalidSizeFormat, $"invalid device size format '{text}'");
        }

        return size;
    }

    /// <summary>pmem2_device_dax_alignment: the first dax_region/align walking up from the device's
    /// sysfs directory (decimal; a non-power-of-two retried as hex for kernels before 4.9).</summary>
    public static ulong Alignment(ulong rdev)
    {
        var spath = CharPath(rdev, null);
        var real = LibC.RealPath(spath, out var errno);
        if (real is null)
        {
            Errors.ThrowErrno(errno, $"realpath \"{spath}\"");
        }

        var devices = Path.Combine(SysRoot, "devices");
        for (var dir = Path.GetDirectoryName(real); !string.IsNullOrEmpty(dir) && dir != devices; dir = Path.GetDirectoryName(dir))
        {
            var alignPath = Path.Combine(dir, "dax_region", "align");
            if (!File.Exists(alignPath))
            {
                continue;
            }

            var text = File.ReadAllText(alignPath);
            if (!text.EndsWith('\n') || !ulong.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var align))
            {
                throw new Pmem2Exception(Pmem2ErrorCode.InvalidAlignmentFormat, $"invalid device alignment format {text}");
            }

            if ((align & (align - 1)) != 0 &&
                !ulong.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out align))
            {
                throw new Pmem2Exception(Pmem2ErrorCode.InvalidAlignmentFormat, $"invalid device alignment format {text}");
            }

            return align;
        }

        return 0; // reported by the caller as "alignment (0) has to be a power of two"
    }

    /// <summary>
    /// Deep flush of a device DAX region (deep_flush_linux.c L26-74): find "regionN" in the device's
    /// sysfs path, read 2 bytes of /sys/bus/nd/devices/regionN/deep_flush; unless they are "0\n", write
    /// "1". Open, read and write failures are swallowed (libpmem2 logs them and returns 0, issue #5992).
    /// </summary>
    public static void DeepFlushRegion(ulong rdev)
    {
        var spath = CharPath(rdev, null);
        var real = LibC.RealPath(spath, out _);
        var region = real?.Split('/').LastOrDefault(s => s.StartsWith("region", StringComparison.Ordinal) && s.Length > 6 && char.IsAsciiDigit(s[6]));
        if (region is null)
        {
            Errors.Throw(Pmem2ErrorCode.DaxRegionNotFound, "cannot find region for device dax");
        }

        var path = Path.Combine(SysRoot, "bus", "nd", "devices", region, "deep_flush");
        try
        {
            Span<byte> buf = stackalloc byte[2];
            int n;
            using (var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read))
            {
                Pmem2Diagnostics.SysfsRead();
                n = RandomAccess.Read(h, buf, 0);
            }

            if (n == 2 && buf[0] == (byte)'0' && buf[1] == (byte)'\n')
            {
                return;
            }

            using var w = File.OpenHandle(path, FileMode.Open, FileAccess.Write);
            Pmem2Diagnostics.SysfsWrite();
            RandomAccess.Write(w, "1"u8, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Swallowed on purpose, like libpmem2: the CPU flush already happened and the region's
            // deep_flush attribute is best effort (it needs root, and reads "0" on some platforms).
        }
    }

    private static string CharPath(ulong rdev, string? leaf)
    {
        var dir = Path.Combine(SysRoot, "dev", "char", $"{LibC.Major(rdev)}:{LibC.Minor(rdev)}");
        return leaf is null ? dir : Path.Combine(dir, leaf);
    }

    /// <summary>strtoull(s, &amp;end, 0): decimal, 0x-prefixed hex, or 0-prefixed octal.</summary>
    private static bool TryParseC(string s, out ulong value)
    {
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            return ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
        }

        if (s.Length > 1 && s[0] == '0')
        {
            value = 0;
            foreach (var ch in s.AsSpan(1))
            {
                if (ch is < '0' or > '7')
                {
                    return false;
                }

                value = checked((value * 8) + (ulong)(ch - '0'));
            }

            return true;
        }

        return ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
