using System.Globalization;
using PmemService.Contracts.V1;
using RegionInfo = PmemService.Contracts.V1.RegionInfo;

namespace PmemService.Client;

public sealed partial class PmemClient
{
    /// <summary>
    /// Records the region's content: bytes <c>[0, <paramref name="length"/>)</c> are meaningful and have
    /// CRC-64 <paramref name="crc64"/>. Kept durably with the region file and returned by GetRegion
    /// (<see cref="RegionInfo.ContentLength"/>, <see cref="RegionInfo.ContentCrc64"/>); pmemctl
    /// <c>put</c> sets it and <c>get</c> uses it. Not retried automatically.
    /// </summary>
    /// <exception cref="PmemException">Reason <c>CONTENT_METADATA_NOT_SUPPORTED</c> when the pool's filesystem has no user xattrs.</exception>
    public async Task<RegionInfo> SetRegionContentAsync(string name, long length, ulong crc64, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var request = new SetRegionContentRequest { Name = name, ContentLength = (ulong)length, ContentCrc64 = FormatCrc64(crc64) };
        var response = await UnaryAsync(_client.SetRegionContentAsync, request, cancellationToken).ConfigureAwait(false);
        return response.Region;
    }

    /// <summary>Removes the recorded content of a region (see <see cref="SetRegionContentAsync"/>).</summary>
    public async Task<RegionInfo> ClearRegionContentAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        var response = await UnaryAsync(_client.SetRegionContentAsync, new SetRegionContentRequest { Name = name, Clear = true }, cancellationToken)
            .ConfigureAwait(false);
        return response.Region;
    }

    /// <summary>A CRC-64 as <c>0x</c> and 16 lowercase hex digits, the one form used everywhere (API strings, pmemctl text and JSON).</summary>
    public static string FormatCrc64(ulong crc64) => "0x" + crc64.ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>Parses a CRC-64 in hex (optionally prefixed with 0x).</summary>
    public static bool TryParseCrc64(string? text, out ulong crc64)
    {
        crc64 = 0;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            text = text[2..];
        }

        return text.Length is > 0 and <= 16 && ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out crc64);
    }
}
