using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>SetRegionContent and the content fields of GetRegion (see <see cref="RegionContent"/>).</summary>
internal sealed partial class PmemGrpcService
{
    public override Task<SetRegionContentResponse> SetRegionContent(SetRegionContentRequest request, ServerCallContext context)
    {
        var name = RegionName.Validate(request.Name);
        ulong crc = 0;
        if (request.Clear)
        {
            if (request.ContentLength != 0 || request.ContentCrc64.Length != 0)
            {
                throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidChecksum,
                    "clear takes no content_length or content_crc64.", "content_crc64");
            }
        }
        else if (!RegionContent.TryParseHex(request.ContentCrc64, out crc))
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidChecksum,
                $"content_crc64 '{request.ContentCrc64}' is not a CRC-64 in hex (up to 16 hex digits).", "content_crc64");
        }

        var info = _regions.Get(name, Caller(context), AccessRights.Write, "SetRegionContent"); // NOT_FOUND / denied, or not a region (symlink, ...) before anything is written
        RegionContent.Set(name, Path.Combine(_regions.PoolPath, name), request.ContentLength, crc, request.Clear);
        return Task.FromResult(new SetRegionContentResponse { Region = WithContent(info) });
    }

    private RegionInfo WithContent(RegionInfo info) => RegionContent.Fill(info, Path.Combine(_regions.PoolPath, info.Name));
}
