using Grpc.Core;

namespace PmemService.Server.Internal;

/// <summary>Region name rules: [A-Za-z0-9._-], 1 to 128 characters, not starting with '.'.</summary>
internal static class RegionName
{
    public const int MaxLength = 128;

    public static bool IsValid(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxLength || name[0] == '.')
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Throws INVALID_ARGUMENT INVALID_REGION_NAME when <paramref name="name"/> breaks the rules.</summary>
    public static string Validate(string? name, string field = "name")
    {
        if (!IsValid(name))
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidRegionName,
                $"Region name must be 1 to {MaxLength} characters of [A-Za-z0-9._-] and not start with '.'.", field);
        }

        return name!;
    }
}

/// <summary>Range arithmetic shared by every data RPC: checked before the first byte moves.</summary>
internal static class RegionRange
{
    /// <summary>Throws unless [offset, offset+length) lies inside a region of <paramref name="size"/> bytes.</summary>
    public static void Check(string name, ulong size, ulong offset, ulong length, string offsetField = "offset", string lengthField = "length")
    {
        if (length > ulong.MaxValue - offset)
        {
            throw new PmemServiceException(StatusCode.OutOfRange, PmemErrorReasons.RangeOverflow,
                $"offset {offset} + length {length} overflows a 64-bit offset.", lengthField)
                .With("region", name).With("offset", offset).With("length", length);
        }

        if (offset > size || offset + length > size)
        {
            throw new PmemServiceException(StatusCode.OutOfRange, PmemErrorReasons.RangeOutOfBounds,
                $"Range [{offset}, {offset + length}) is outside region '{name}' of {size} bytes.",
                offset > size ? offsetField : lengthField)
                .With("region", name).With("offset", offset).With("length", length).With("region_size", size);
        }
    }
}
