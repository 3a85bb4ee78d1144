using System.Globalization;

namespace PmemCtl;

/// <summary>Parses and formats byte counts: <c>4096</c>, <c>0x1000</c>, <c>4KiB</c>, <c>4K</c>, <c>1MiB</c>, <c>1GiB</c>, <c>1MB</c>.</summary>
/// <remarks>IEC suffixes (KiB, MiB, GiB, TiB) and bare K/M/G/T are powers of 1024; SI suffixes
/// (kB/KB, MB, GB, TB) are powers of 1000. A trailing "B" alone means bytes. Case-insensitive.</remarks>
public static class Sizes
{
    private static readonly (string Suffix, long Multiplier)[] s_suffixes =
    [
        ("KIB", 1L << 10), ("MIB", 1L << 20), ("GIB", 1L << 30), ("TIB", 1L << 40),
        ("KB", 1_000L), ("MB", 1_000_000L), ("GB", 1_000_000_000L), ("TB", 1_000_000_000_000L),
        ("K", 1L << 10), ("M", 1L << 20), ("G", 1L << 30), ("T", 1L << 40),
        ("B", 1L),
    ];

    /// <summary>Parses a byte count.</summary>
    /// <exception cref="UsageException">Malformed, negative or too large.</exception>
    public static long Parse(string text, string what = "size")
    {
        if (!TryParse(text, out var value))
        {
            throw new UsageException($"invalid {what} '{text}': expected bytes like 4096, 0x1000, 4KiB, 1MiB or 1GiB");
        }

        return value;
    }

    /// <summary>Parses a byte count; false when malformed or out of range.</summary>
    public static bool TryParse(string? text, out long value)
    {
        value = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var s = text.Trim().Replace("_", string.Empty, StringComparison.Ordinal);
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            return long.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && value >= 0;
        }

        long multiplier = 1;
        foreach (var (suffix, m) in s_suffixes)
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                s = s[..^suffix.Length].TrimEnd();
                multiplier = m;
                break;
            }
        }

        if (s.Length == 0)
        {
            return false;
        }

        if (long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var whole))
        {
            if (whole > long.MaxValue / multiplier)
            {
                return false;
            }

            value = whole * multiplier;
            return true;
        }

        // Fractions such as 1.5GiB, as long as the result is a whole number of bytes.
        if (multiplier > 1 && decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var fraction))
        {
            var bytes = fraction * multiplier;
            if (bytes != decimal.Truncate(bytes) || bytes > long.MaxValue)
            {
                return false;
            }

            value = (long)bytes;
            return true;
        }

        return false;
    }

    /// <summary>Formats a byte count for humans: <c>512 B</c>, <c>4 KiB</c>, <c>1.5 GiB</c>.</summary>
    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.##} {units[unit]}");
    }

    /// <summary>Formats a rate: <c>812.4 MiB/s</c>.</summary>
    public static string FormatRate(double bytesPerSecond) =>
        string.Create(CultureInfo.InvariantCulture, $"{bytesPerSecond / (1024 * 1024):0.0} MiB/s");
}
