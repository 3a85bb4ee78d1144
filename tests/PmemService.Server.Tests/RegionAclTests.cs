using System.Text;
using PmemService.Server.Internal;

namespace PmemService.Server.Tests;

/// <summary>The stored form of a region's owner and access list (user.pmem.acl) and the rights it gives.</summary>
public sealed class RegionAclTests
{
    [Fact]
    public void Round_trips_and_normalizes_rights()
    {
        var acl = new RegionAcl("uid:1000", [new RegionAclEntry("gid:2000", AccessRights.Write), new RegionAclEntry("sub:ops team", AccessRights.Admin)]);
        var parsed = RegionAcl.Parse(acl.Serialize());
        Assert.NotNull(parsed);
        Assert.Equal("uid:1000", parsed.Owner);
        Assert.Equal("gid:2000", parsed.Entries[0].Subject);
        Assert.Equal(AccessRights.Read | AccessRights.Write, parsed.Entries[0].Rights);
        Assert.Equal(AccessRights.Read | AccessRights.Write | AccessRights.Admin, parsed.Entries[1].Rights);
        Assert.Contains("\"rights\":\"rw\"", Encoding.UTF8.GetString(acl.Serialize()), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("v1 1 0123")] // the content attribute's format, not an access list
    [InlineData("{\"v\":2,\"owner\":\"uid:1\"}")]
    [InlineData("{\"v\":1,\"owner\":\"root\"}")]
    [InlineData("{\"v\":1}")]
    [InlineData("[1,2]")]
    public void Anything_else_is_no_access_list(string stored) => Assert.Null(RegionAcl.Parse(Encoding.UTF8.GetBytes(stored)));

    [Fact]
    public void Entries_that_do_not_parse_are_dropped_not_widened()
    {
        var parsed = RegionAcl.Parse(Encoding.UTF8.GetBytes(
            "{\"v\":1,\"owner\":\"uid:1\",\"entries\":[{\"subject\":\"uid:x\",\"rights\":\"rwa\"},{\"subject\":\"uid:2\",\"rights\":\"z\"},{\"subject\":\"uid:3\",\"rights\":\"r\"}]}"));
        Assert.NotNull(parsed);
        var entry = Assert.Single(parsed.Entries);
        Assert.Equal(new RegionAclEntry("uid:3", AccessRights.Read), entry);
    }

    [Fact]
    public void Owner_has_every_right_and_entries_match_uid_gid_and_subject()
    {
        var acl = new RegionAcl("uid:1000", [new RegionAclEntry("gid:50", AccessRights.Read), new RegionAclEntry("uid:7", AccessRights.Write), new RegionAclEntry("sub:bob", AccessRights.Read)]);
        Assert.Equal(AccessRights.Read | AccessRights.Write | AccessRights.Admin, acl.RightsOf(RegionCaller.ForTest("uid:1000")));
        Assert.Equal(AccessRights.Read, acl.RightsOf(RegionCaller.ForTest("uid:9", gid: 50)));
        Assert.Equal(AccessRights.Read | AccessRights.Write, acl.RightsOf(RegionCaller.ForTest("uid:7", gid: 50)));
        Assert.Equal(AccessRights.Read, acl.RightsOf(RegionCaller.ForTest("sub:bob")));
        Assert.Equal(AccessRights.None, acl.RightsOf(RegionCaller.ForTest("sub:uid:7")));
        Assert.Equal(AccessRights.None, acl.RightsOf(RegionCaller.ForTest("uid:70", gid: 5)));
        Assert.False(RegionAcl.IsPrincipal("uid:-1"));
        Assert.False(RegionAcl.IsPrincipal("sub:"));
        Assert.False(RegionAcl.IsPrincipal("sub:a\nb"));
        Assert.True(RegionAcl.IsPrincipal("gid:0"));
    }
}
