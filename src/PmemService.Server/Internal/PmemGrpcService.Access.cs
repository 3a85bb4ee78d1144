using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>GetRegionAccess and SetRegionAccess (per-region access, <see cref="RegionAccessControl"/>): both need admin.</summary>
internal sealed partial class PmemGrpcService
{
    public override Task<GetRegionAccessResponse> GetRegionAccess(GetRegionAccessRequest request, ServerCallContext context)
    {
        var name = RegionName.Validate(request.Name);
        var caller = Caller(context);
        var (status, acl) = ReadAccess(name);
        _regions.Access.Demand(caller, "GetRegionAccess", name, acl, AccessRights.Admin);
        _ = status;
        return Task.FromResult(new GetRegionAccessResponse { Name = name, Access = ToProto(acl) });
    }

    public override Task<SetRegionAccessResponse> SetRegionAccess(SetRegionAccessRequest request, ServerCallContext context)
    {
        var name = RegionName.Validate(request.Name);
        var caller = Caller(context);
        if (request.Entries.Count > RegionAcl.MaxEntries)
        {
            throw InvalidEntry($"At most {RegionAcl.MaxEntries} entries are allowed.", "entries");
        }

        var entries = new List<RegionAclEntry>(request.Entries.Count);
        foreach (var entry in request.Entries)
        {
            if (!RegionAcl.IsPrincipal(entry.Subject))
            {
                throw InvalidEntry($"Subject '{entry.Subject}' is not uid:N, gid:N or sub:TEXT (at most {RegionAcl.MaxSubjectLength} characters).", "entries.subject");
            }

            var rights = (entry.Rights?.Read == true ? AccessRights.Read : 0) | (entry.Rights?.Write == true ? AccessRights.Write : 0) | (entry.Rights?.Admin == true ? AccessRights.Admin : 0);
            if (rights == AccessRights.None)
            {
                throw InvalidEntry($"Entry '{entry.Subject}' gives no right (set read, write or admin).", "entries.rights");
            }

            entries.Add(new RegionAclEntry(entry.Subject, RegionAcl.Normalize(rights)));
        }

        if (request.Owner.Length > 0 && (!RegionAcl.IsPrincipal(request.Owner) || request.Owner.StartsWith("gid:", StringComparison.Ordinal)))
        {
            throw InvalidEntry($"owner '{request.Owner}' is not uid:N or sub:TEXT.", "owner");
        }

        var (status, acl) = ReadAccess(name);
        _regions.Access.Demand(caller, "SetRegionAccess", name, acl, AccessRights.Admin);
        var changed = _regions.Access.Change(caller, name, status, acl, request.Owner.Length > 0 ? request.Owner : null, entries);
        return Task.FromResult(new SetRegionAccessResponse { Name = name, Access = ToProto(changed) });
    }

    private (Pmem2.Pmem2FileStatus Status, RegionAcl? Acl) ReadAccess(string name)
    {
        // GetRegion's lookup: NOT_FOUND, or REGION_NOT_MAPPABLE for a symlink, before any access decision.
        var status = _regions.StatRegion(name) ?? throw PmemServiceException.NotFound(name);
        return (status, _regions.Access.Read(name, status));
    }

    private static RegionAccess ToProto(RegionAcl? acl)
    {
        var access = new RegionAccess { Owner = acl?.Owner ?? string.Empty };
        foreach (var entry in acl?.Entries ?? [])
        {
            access.Entries.Add(new RegionAccessEntry
            {
                Subject = entry.Subject,
                Rights = new RegionRights
                {
                    Read = entry.Rights.HasFlag(AccessRights.Read),
                    Write = entry.Rights.HasFlag(AccessRights.Write),
                    Admin = entry.Rights.HasFlag(AccessRights.Admin),
                },
            });
        }

        return access;
    }

    private static PmemServiceException InvalidEntry(string message, string field) =>
        new(StatusCode.InvalidArgument, PmemErrorReasons.InvalidAccessEntry, message, field);
}
