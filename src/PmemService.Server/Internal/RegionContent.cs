using System.Globalization;
using System.Text;
using Grpc.Core;
using Pmem2;
using PmemService.Contracts.V1;
using RegionInfo = PmemService.Contracts.V1.RegionInfo;

namespace PmemService.Server.Internal;

/// <summary>
/// A region's recorded content (length from offset 0 and CRC-64), kept in the extended attribute
/// <c>user.pmem.content</c> of the region file (fsynced by <see cref="Pmem2FileAttributes"/>). It lives in
/// the inode, so it needs no lifecycle of its own: it is renamed with the file at creation and goes
/// away when the region is deleted. Value: <c>v1 LENGTH CRC16HEX</c> (ASCII, no 0x).
/// </summary>
internal static class RegionContent
{
    public const string AttributeName = "user.pmem.content";

    private const int EOPNOTSUPP = 95;
    private const int ENOENT = 2;

    /// <summary>The API's CRC-64 string: 0x and 16 lowercase hex digits (as pmemctl prints it).</summary>
    public static string Hex(ulong crc) => "0x" + crc.ToString("x16", CultureInfo.InvariantCulture);

    public static bool TryParseHex(string? text, out ulong crc)
    {
        crc = 0;
        text = text?.Trim();
        if (text is null)
        {
            return false;
        }

        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            text = text[2..];
        }

        return text.Length is > 0 and <= 16 && ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out crc);
    }

    /// <summary>Adds the recorded content (if any) to <paramref name="info"/>; a missing file or attribute leaves it unset.</summary>
    public static RegionInfo Fill(RegionInfo info, string path)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            var value = Pmem2FileAttributes.Get(handle, AttributeName);
            if (value is not null && TryParse(Encoding.ASCII.GetString(value), out var length, out var crc))
            {
                info.ContentLength = length;
                info.ContentCrc64 = Hex(crc);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Pmem2Exception)
        {
            // Unreadable metadata is reported as "none recorded"; the region info itself is still right.
        }

        return info;
    }

    /// <summary>Records (or with <paramref name="clear"/> removes) the content of the region file at <paramref name="path"/>.</summary>
    public static void Set(string name, string path, ulong length, ulong crc, bool clear)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            var size = (ulong)RandomAccess.GetLength(handle);
            if (clear)
            {
                Pmem2FileAttributes.Remove(handle, AttributeName);
                return;
            }

            if (length > size)
            {
                throw new PmemServiceException(StatusCode.OutOfRange, PmemErrorReasons.RangeOutOfBounds,
                    $"content_length {length} is larger than region '{name}' ({size} bytes).", "content_length")
                    .With("region", name).With("region_size", size);
            }

            Pmem2FileAttributes.Set(handle, AttributeName, Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"v1 {length} {crc:x16}")));
        }
        catch (FileNotFoundException)
        {
            throw PmemServiceException.NotFound(name);
        }
        catch (Pmem2Exception e) when (e.Errno == EOPNOTSUPP)
        {
            throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.ContentMetadataNotSupported,
                $"The pool's filesystem does not support user extended attributes, so the content of region '{name}' cannot be recorded.", inner: e)
                .With("region", name);
        }
        catch (Pmem2Exception e) when (e.Errno == ENOENT)
        {
            throw PmemServiceException.NotFound(name);
        }
    }

    private static bool TryParse(string text, out ulong length, out ulong crc)
    {
        length = 0;
        crc = 0;
        var parts = text.Split(' ');
        return parts.Length == 3 && parts[0] == "v1"
            && ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out length)
            && TryParseHex(parts[2], out crc);
    }
}
