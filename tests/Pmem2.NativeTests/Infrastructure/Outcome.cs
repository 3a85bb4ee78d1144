using System.Globalization;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>
/// What one side did with one case: an error code (PMEM2_E_* or -errno) with its message, or a map's
/// size / effective granularity / 2 MiB alignment, or (ours only) an exception other than Pmem2Exception.
/// </summary>
internal readonly record struct Outcome(int Code, ulong Size, int Granularity, bool Aligned2MiB, string? Message, string? Unexpected)
{
    public bool Succeeded => Code == 0 && Unexpected is null;

    public static Outcome Mapped(ulong size, int granularity, nint address) =>
        new(0, size, granularity, address % (2 << 20) == 0, null, null);

    public static Outcome Value(ulong value) => new(0, value, -1, false, null, null);

    public static Outcome Ok() => new(0, 0, -1, false, null, null);

    public static Outcome Failed(int code, string? message) => new(code, 0, -1, false, message, null);

    public static Outcome Threw(Exception e) => new(int.MinValue, 0, -1, false, null, $"{e.GetType().Name}: {e.Message}");

    public override string ToString()
    {
        if (Unexpected is not null)
        {
            return $"threw {Unexpected}";
        }

        if (Code != 0)
        {
            return $"{CodeName(Code)} \"{Message ?? "<no message>"}\"";
        }

        return Granularity < 0
            ? $"OK {Size.ToString(CultureInfo.InvariantCulture)}"
            : $"OK size={Size.ToString(CultureInfo.InvariantCulture)} gran={Raw.Granularity(Granularity)}{(Aligned2MiB ? " 2MiB-aligned" : " not-2MiB-aligned")}";
    }

    public static string CodeName(int code)
    {
        if (code == 0)
        {
            return "OK";
        }

        if (code > -4096)
        {
            return $"-errno({-code})";
        }

        var name = Enum.GetName(typeof(Pmem2ErrorCode), code);
        return name is null ? code.ToString(CultureInfo.InvariantCulture) : $"{name}({code})";
    }
}
