using System.Globalization;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>libpmem2's raw values, as passed to the native side.</summary>
internal static class Raw
{
    public const int Byte = 0;
    public const int CacheLine = 1;
    public const int Page = 2;
    public const int Shared = 0;
    public const int Private = 1;
    public const uint ProtExec = 1u << 29;
    public const uint ProtRead = 1u << 30;
    public const uint ProtWrite = 1u << 31;
    public const uint ProtNone = 0;
    public const uint RW = ProtRead | ProtWrite;
    public const uint RWX = ProtRead | ProtWrite | ProtExec;

    /// <summary>Granularities of the grid; null = never set (GRANULARITY_NOT_SET).</summary>
    public static readonly int?[] Granularities = [null, Byte, CacheLine, Page];

    public static readonly int[] Sharings = [Shared, Private];

    public static readonly uint[] Protections = [ProtRead, RW, RWX, ProtNone];

    /// <summary>PMEM2_FORCE_GRANULARITY values of the grid; null = unset.</summary>
    public static readonly string?[] Forces = [null, "BYTE", "CACHE_LINE", "PAGE"];

    public static string Granularity(int? g) => g switch
    {
        null => "unset",
        Byte => "BYTE",
        CacheLine => "CACHE_LINE",
        Page => "PAGE",
        _ => g.Value.ToString(CultureInfo.InvariantCulture),
    };

    public static string Protection(uint p)
    {
        if (p == ProtNone)
        {
            return "NONE";
        }

        var s = string.Empty;
        if ((p & ProtRead) != 0)
        {
            s += "R";
        }

        if ((p & ProtWrite) != 0)
        {
            s += "W";
        }

        if ((p & ProtExec) != 0)
        {
            s += "X";
        }

        var rest = p & ~(ProtRead | ProtWrite | ProtExec);
        return rest == 0 ? s : $"{s}|0x{rest:x}";
    }

    public static string Size(ulong v)
    {
        if (v == ulong.MaxValue)
        {
            return "UINT64_MAX";
        }

        if (v == (ulong.MaxValue & ~4095UL))
        {
            return "UINT64_MAX&~4095";
        }

        if (v == (ulong)long.MaxValue + 1)
        {
            return "INT64_MAX+1";
        }

        if (v == ((ulong)long.MaxValue & ~4095UL))
        {
            return "INT64_MAX&~4095";
        }

        if (v == 0)
        {
            return "0";
        }

        const ulong Two63 = 1UL << 63;
        if (v >= Two63 - 8192 && v <= Two63 + 8192)
        {
            return v == Two63 - 1 ? "INT64_MAX" : v >= Two63 ? $"INT64_MAX+{v - Two63 + 1}" : $"INT64_MAX-{Two63 - 1 - v}";
        }

        string[] units = ["", "KiB", "MiB", "GiB"];
        for (var i = units.Length - 1; i > 0; i--)
        {
            var unit = 1UL << (10 * i);
            if (v >= unit)
            {
                if (v % unit == 0)
                {
                    return $"{v / unit}{units[i]}";
                }

                var r = v % unit;
                if (unit - r < 4096)
                {
                    return $"{v / unit + 1}{units[i]}-{unit - r}";
                }

                if (r < 8192 && i > 1)
                {
                    return $"{v / unit}{units[i]}+{r}";
                }
            }
        }

        return v.ToString(CultureInfo.InvariantCulture);
    }
}

/// <summary>One combination of the map grid.</summary>
internal sealed record MapCase(
    string Slice,
    string SourceLabel,
    ulong FileSize,
    ulong Offset,
    ulong Length,
    int? Granularity,
    int Sharing,
    uint Protection,
    bool ReadOnlyFd,
    string? Force)
{
    public override string ToString() =>
        $"[{Slice}] src={SourceLabel} size={Raw.Size(FileSize)} off={Raw.Size(Offset)} len={Raw.Size(Length)} " +
        $"gran={Raw.Granularity(Granularity)} {(Sharing == Raw.Shared ? "SHARED" : Sharing == Raw.Private ? "PRIVATE" : $"sharing={Sharing}")} " +
        $"prot={Raw.Protection(Protection)} fd={(ReadOnlyFd ? "O_RDONLY" : "O_RDWR")} force={Force ?? "unset"}";
}
