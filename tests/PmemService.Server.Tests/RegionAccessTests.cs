using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using PmemService.Contracts.V1;
using static PmemService.Server.Tests.TestHelpers;
using PmemRpcClient = PmemService.Contracts.V1.PmemService.PmemServiceClient;

namespace PmemService.Server.Tests;

/// <summary>
/// Issue 12 items 4 and 5 over authenticated TCP: every caller is a token subject (sub:alice, sub:bob) or a
/// certificate subject, so owner and other identities run in-process against a real Kestrel server and a
/// real pool. The Unix socket side (real second user, zero-copy socket path, OpenDirect) is in
/// <see cref="RegionAccessUnixTests"/>.
/// </summary>
public sealed class RegionAccessTests : IDisposable
{
    private readonly X509Certificate2 _ca = TestPki.CreateCa("pmem acl test CA");
    private readonly (RSA Key, string PublicPem) _signing = TestPki.CreateSigningKey();
    private readonly List<GrpcChannel> _channels = [];

    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        _ca.Dispose();
        _signing.Key.Dispose();
    }

    private async Task<PmemTestServer> StartAsync(Action<Dictionary<string, string?>>? configure = null) =>
        (await TestPki.StartTcpAuthenticatedAsync(_ca, _signing.PublicPem, configure: configure)).Server;

    /// <summary>A client whose every call carries a fresh token for <paramref name="subject"/> (or the client certificate).</summary>
    private PmemRpcClient As(PmemTestServer server, string subject, X509Certificate2? certificate = null)
    {
        var credentials = CallCredentials.FromInterceptor((_, metadata) =>
        {
            if (certificate is null)
            {
                metadata.Add("authorization", "Bearer " + TestPki.Token(_signing.Key, "k1", subject, TestPki.Audience, TestPki.Issuer));
            }

            return Task.CompletedTask;
        });
        var channel = GrpcChannel.ForAddress(TestPki.HttpsAddress(server), new GrpcChannelOptions
        {
            HttpHandler = TestPki.TrustingHandler(_ca, certificate),
            DisposeHttpClient = true,
            Credentials = ChannelCredentials.Create(ChannelCredentials.SecureSsl, credentials),
        });
        _channels.Add(channel);
        return new PmemRpcClient(channel);
    }

    private static async Task<string> CreateWithBytesAsync(PmemRpcClient owner, string prefix, byte[] content)
    {
        var name = UniqueName(prefix);
        var created = await owner.MapRegionAsync(new MapRegionRequest { Name = name, Size = 4096, CreateIfMissing = true });
        Assert.True(created.Region.Created);
        await owner.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(content) });
        return name;
    }

    private static async Task<byte[]> ReadAsync(PmemRpcClient client, string name, int length) =>
        (await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = (ulong)length })).Data.ToByteArray();

    private static async Task StreamWriteAsync(PmemRpcClient client, string name, byte[] data)
    {
        using var call = client.StreamWriteRegion();
        try
        {
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name } });
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(data) });
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // The service answered before the request stream was written: its status is the call's (below).
        }

        await call;
    }

    private static async Task<byte[]> StreamReadAsync(PmemRpcClient client, string name)
    {
        using var call = client.StreamReadRegion(new StreamReadRegionRequest { Name = name });
        var bytes = new List<byte>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            bytes.AddRange(call.ResponseStream.Current.Data.ToByteArray());
        }

        return [.. bytes];
    }

    /// <summary>Every region RPC that names one region (data, lifecycle, content, access).</summary>
    private static IEnumerable<(string Rpc, AccessNeeded Needs, Func<Task> Call)> EveryRegionRpc(PmemRpcClient client, string name)
    {
        yield return ("MapRegion(open)", AccessNeeded.Read, async () => await client.MapRegionAsync(new MapRegionRequest { Name = name }));
        yield return ("GetRegion", AccessNeeded.Read, async () => await client.GetRegionAsync(new GetRegionRequest { Name = name }));
        yield return ("ReadRegion", AccessNeeded.Read, async () => await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 16 }));
        yield return ("StreamReadRegion", AccessNeeded.Read, async () => await StreamReadAsync(client, name));
        yield return ("WriteRegion", AccessNeeded.Write, async () => await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(Enumerable.Repeat((byte)0xEE, 16).ToArray()) }));
        yield return ("WriteRegion(defer)", AccessNeeded.Write, async () => await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 8, DeferPersist = true, Data = ByteString.CopyFrom(Enumerable.Repeat((byte)0xEF, 8).ToArray()) }));
        yield return ("StreamWriteRegion", AccessNeeded.Write, async () => await StreamWriteAsync(client, name, Enumerable.Repeat((byte)0xDD, 16).ToArray()));
        yield return ("PersistRegion", AccessNeeded.Write, async () => await client.PersistRegionAsync(new PersistRegionRequest { Name = name }));
        yield return ("SetRegionContent", AccessNeeded.Write, async () => await client.SetRegionContentAsync(new SetRegionContentRequest { Name = name, ContentLength = 1, ContentCrc64 = "0x1" }));
        yield return ("AtomicWrite", AccessNeeded.Write, async () => await client.AtomicWriteAsync(new AtomicWriteRequest { Name = name, Offset = 0, Value = -1 }));
        yield return ("CompareAndSwap", AccessNeeded.Write, async () => await client.CompareAndSwapAsync(new CompareAndSwapRequest { Name = name, Offset = 8, Expected = 0, Desired = -1 }));
        yield return ("FetchAdd", AccessNeeded.Write, async () => await client.FetchAddAsync(new FetchAddRequest { Name = name, Offset = 16, Delta = 1 }));
        yield return ("GetUpload", AccessNeeded.Read, async () => await client.GetUploadAsync(new GetUploadRequest { Name = name, UploadId = "u1" }));
        yield return ("WatchRegion", AccessNeeded.Read, async () =>
        {
            // A refusal ends the call with its status; an accepted watch would wait for events until the deadline.
            using var watch = client.WatchRegion(new WatchRegionRequest { Name = name }, deadline: DateTime.UtcNow.AddSeconds(10));
            await watch.ResponseStream.MoveNext(CancellationToken.None);
        });
        yield return ("GetRegionAccess", AccessNeeded.Admin, async () => await client.GetRegionAccessAsync(new GetRegionAccessRequest { Name = name }));
        yield return ("SetRegionAccess", AccessNeeded.Admin, async () => await client.SetRegionAccessAsync(new SetRegionAccessRequest { Name = name }));
        yield return ("DeleteRegion", AccessNeeded.Admin, async () => await client.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true }));
        yield return ("UnmapRegion", AccessNeeded.Read, async () => await client.UnmapRegionAsync(new UnmapRegionRequest { Name = name }));
    }

    public enum AccessNeeded
    {
        Read,
        Write,
        Admin,
    }

    [Fact]
    public async Task Another_subject_without_rights_sees_nothing_and_changes_nothing()
    {
        await using var server = await StartAsync();
        var alice = As(server, "alice");
        var bob = As(server, "bob");
        var content = Pattern(64, 7);
        var name = await CreateWithBytesAsync(alice, "alices", content);
        Assert.Equal("sub:alice", (await alice.GetRegionAsync(new GetRegionRequest { Name = name })).Region.Owner);

        foreach (var (rpc, _, call) in EveryRegionRpc(bob, name))
        {
            // Isolation: exactly what a missing region answers, so bob cannot tell the region exists.
            var (exception, _, _) = await AssertError(call, StatusCode.NotFound, "REGION_NOT_FOUND");
            Assert.Contains(name, exception.Status.Detail, StringComparison.Ordinal);
            _ = rpc;
        }

        // Creating under a name that is taken by a region bob cannot see: PERMISSION_DENIED (names are one namespace).
        await AssertError(async () => await bob.MapRegionAsync(new MapRegionRequest { Name = name, Size = 4096, CreateIfMissing = true }),
            StatusCode.PermissionDenied, "REGION_ACCESS_DENIED");
        Assert.DoesNotContain((await bob.ListRegionsAsync(new ListRegionsRequest())).Regions, r => r.Name == name);
        Assert.Contains((await alice.ListRegionsAsync(new ListRegionsRequest())).Regions, r => r.Name == name);

        // Untouched: bytes, mapping references, content record, access list.
        Assert.Equal(content, await ReadAsync(alice, name, 64));
        var info = (await alice.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
        Assert.True(info.Mapped);
        Assert.Equal(1u, info.MapReferences);
        Assert.False(info.HasContentLength);
        Assert.Empty((await alice.GetRegionAccessAsync(new GetRegionAccessRequest { Name = name })).Access.Entries);
        Assert.NotEmpty(server.Logs.WithEventName("RegionAccessDenied"));
        Assert.True(File.Exists(Path.Combine(server.PoolPath, name)));
    }

    [Fact]
    public async Task Read_access_lets_read_but_not_write_and_write_access_lets_write()
    {
        await using var server = await StartAsync();
        var alice = As(server, "alice");
        var bob = As(server, "bob");
        var content = Pattern(64, 11);
        var name = await CreateWithBytesAsync(alice, "shared-r", content);
        var set = await alice.SetRegionAccessAsync(new SetRegionAccessRequest
        {
            Name = name,
            Entries = { new RegionAccessEntry { Subject = "sub:bob", Rights = new RegionRights { Read = true } } },
        });
        Assert.Equal("sub:alice", set.Access.Owner);

        var bobsView = (await bob.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
        Assert.True(bobsView.CallerRights.Read);
        Assert.False(bobsView.CallerRights.Write);
        Assert.Equal(content, await ReadAsync(bob, name, 64));
        Assert.Equal(content, (await StreamReadAsync(bob, name))[..64]);
        Assert.Contains((await bob.ListRegionsAsync(new ListRegionsRequest())).Regions, r => r.Name == name);

        foreach (var (rpc, needs, call) in EveryRegionRpc(bob, name))
        {
            if (needs == AccessNeeded.Read)
            {
                continue;
            }

            var (exception, _, info) = await AssertError(call, StatusCode.PermissionDenied, "REGION_ACCESS_DENIED");
            Assert.Equal("sub:bob", info.Metadata["caller"]);
            Assert.False(string.IsNullOrEmpty(exception.Status.Detail), rpc);
        }

        Assert.Equal(content, await ReadAsync(alice, name, 64)); // no write of bob's landed (zero-copy paths included)

        await alice.SetRegionAccessAsync(new SetRegionAccessRequest
        {
            Name = name,
            Entries = { new RegionAccessEntry { Subject = "sub:bob", Rights = new RegionRights { Write = true } } },
        });
        await bob.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(new byte[] { 1, 2, 3 }) });
        await StreamWriteAsync(bob, name, [4, 5, 6]);
        Assert.Equal(new byte[] { 4, 5, 6 }, (await ReadAsync(alice, name, 3)));
        // Write is not admin.
        await AssertError(async () => await bob.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true }), StatusCode.PermissionDenied, "REGION_ACCESS_DENIED");
        await AssertError(async () => await bob.SetRegionAccessAsync(new SetRegionAccessRequest { Name = name, Owner = "sub:bob" }), StatusCode.PermissionDenied, "REGION_ACCESS_DENIED");
        // Invalid entries are refused before anything changes.
        await AssertError(async () => await alice.SetRegionAccessAsync(new SetRegionAccessRequest
        {
            Name = name,
            Entries = { new RegionAccessEntry { Subject = "bob", Rights = new RegionRights { Read = true } } },
        }), StatusCode.InvalidArgument, "INVALID_ACCESS_ENTRY");
        Assert.Single((await alice.GetRegionAccessAsync(new GetRegionAccessRequest { Name = name })).Access.Entries);
    }

    [Fact]
    public async Task A_certificate_subject_owns_what_it_creates_and_the_owner_can_give_a_region_away()
    {
        await using var server = await StartAsync();
        using var cert = TestPki.Issue(_ca, "carol", server: false);
        var carol = As(server, "carol-cert", cert);
        var dave = As(server, "dave");
        var name = await CreateWithBytesAsync(carol, "carols", Pattern(16, 3));
        Assert.Equal("sub:carol", (await carol.GetRegionAsync(new GetRegionRequest { Name = name })).Region.Owner);
        await AssertError(async () => await dave.GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.NotFound, "REGION_NOT_FOUND");

        await carol.SetRegionAccessAsync(new SetRegionAccessRequest { Name = name, Owner = "sub:dave" });
        Assert.Equal("sub:dave", (await dave.GetRegionAccessAsync(new GetRegionAccessRequest { Name = name })).Access.Owner);
        await AssertError(async () => await carol.GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.NotFound, "REGION_NOT_FOUND");
        await dave.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true });
        Assert.False(File.Exists(Path.Combine(server.PoolPath, name)));
    }

    [Fact]
    public async Task Ownership_and_access_list_survive_a_restart()
    {
        await using var server = await StartAsync();
        var name = await CreateWithBytesAsync(As(server, "alice"), "durable", Pattern(32, 5));
        using (var created = File.OpenHandle(Path.Combine(server.PoolPath, name)))
        {
            // Set by the create itself (on the temporary file, before the rename), not by a later call.
            Assert.Equal("{\"v\":1,\"owner\":\"sub:alice\",\"entries\":[]}",
                System.Text.Encoding.UTF8.GetString(Pmem2.Pmem2FileAttributes.Get(created, "user.pmem.acl")!));
        }

        await As(server, "alice").SetRegionAccessAsync(new SetRegionAccessRequest
        {
            Name = name,
            Entries = { new RegionAccessEntry { Subject = "sub:bob", Rights = new RegionRights { Read = true } } },
        });

        // Stored with the file itself (the xattr the durable create set before the rename).
        using (var handle = File.OpenHandle(Path.Combine(server.PoolPath, name)))
        {
            var stored = System.Text.Encoding.UTF8.GetString(Pmem2.Pmem2FileAttributes.Get(handle, "user.pmem.acl")!);
            Assert.Contains("\"owner\":\"sub:alice\"", stored, StringComparison.Ordinal);
            Assert.Contains("sub:bob", stored, StringComparison.Ordinal);
        }

        await server.StopAsync();
        await server.StartAgainAsync();
        var alice = As(server, "alice");
        var bob = As(server, "bob");
        var access = (await alice.GetRegionAccessAsync(new GetRegionAccessRequest { Name = name })).Access;
        Assert.Equal("sub:alice", access.Owner);
        var entry = Assert.Single(access.Entries);
        Assert.Equal("sub:bob", entry.Subject);
        Assert.True(entry.Rights.Read);
        Assert.False(entry.Rights.Write);
        await bob.MapRegionAsync(new MapRegionRequest { Name = name });
        Assert.Equal(Pattern(32, 5), await ReadAsync(bob, name, 32));
        await AssertError(async () => await bob.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFromUtf8("x") }), StatusCode.PermissionDenied, "REGION_ACCESS_DENIED");
        await AssertError(async () => await As(server, "eve").GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.NotFound, "REGION_NOT_FOUND");
    }

    [Fact]
    public async Task Shared_mode_lets_every_admitted_caller_use_every_region_but_records_the_owner()
    {
        await using var server = await StartAsync(s => s["PmemService:RegionAccess"] = "Shared");
        var alice = As(server, "alice");
        var bob = As(server, "bob");
        var name = await CreateWithBytesAsync(alice, "common", Pattern(16, 1));
        var seen = (await bob.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
        Assert.Equal("sub:alice", seen.Owner);
        Assert.True(seen.CallerRights.Admin);
        await bob.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(new byte[] { 9, 9 }) });
        Assert.Equal(new byte[] { 9, 9 }, await ReadAsync(alice, name, 2));
        Assert.Single(server.Logs.WithEventName("RegionAccessShared"));
        await bob.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true });
    }

    [Fact]
    public async Task Region_count_quota_is_per_owner()
    {
        await using var server = await StartAsync(s => s["PmemService:MaxRegionsPerIdentity"] = "2");
        var alice = As(server, "alice");
        var bob = As(server, "bob");
        var first = await CreateWithBytesAsync(alice, "q1", [1]);
        await CreateWithBytesAsync(alice, "q2", [2]);
        var third = UniqueName("q3");
        var (_, _, info) = await AssertError(async () => await alice.MapRegionAsync(new MapRegionRequest { Name = third, Size = 4096, CreateIfMissing = true }),
            StatusCode.ResourceExhausted, "REGION_COUNT_QUOTA");
        Assert.Equal("2", info.Metadata["limit"]);
        Assert.False(File.Exists(Path.Combine(server.PoolPath, third)));
        Assert.NotEmpty(server.Logs.WithEventName("RegionQuotaExceeded"));
        await CreateWithBytesAsync(bob, "bobs", [3]); // another owner's quota is its own

        await alice.DeleteRegionAsync(new DeleteRegionRequest { Name = first, Force = true });
        await alice.MapRegionAsync(new MapRegionRequest { Name = third, Size = 4096, CreateIfMissing = true });

        // Counted from the pool after a restart.
        await server.StopAsync();
        await server.StartAgainAsync();
        await AssertError(async () => await As(server, "alice").MapRegionAsync(new MapRegionRequest { Name = UniqueName("q4"), Size = 4096, CreateIfMissing = true }),
            StatusCode.ResourceExhausted, "REGION_COUNT_QUOTA");
    }

    [Fact]
    public async Task Mapped_bytes_quota_is_charged_to_the_owner()
    {
        await using var server = await StartAsync(s => s["PmemService:MaxMappedBytesPerIdentity"] = "8192");
        var alice = As(server, "alice");
        var bob = As(server, "bob");
        await CreateWithBytesAsync(alice, "m1", [1]);
        var second = await CreateWithBytesAsync(alice, "m2", [2]);
        var third = UniqueName("m3");
        await AssertError(async () => await alice.MapRegionAsync(new MapRegionRequest { Name = third, Size = 4096, CreateIfMissing = true }),
            StatusCode.ResourceExhausted, "MAPPED_BYTES_QUOTA");
        Assert.False(File.Exists(Path.Combine(server.PoolPath, third)));
        Assert.Contains(server.Logs.WithEventName("RegionQuotaExceeded"), e => e.Properties["Quota"].ToString() == "\"mapped bytes\"" && e.Properties["Used"].ToString() == "8192");
        await CreateWithBytesAsync(bob, "bm", [3]); // bob's bytes are bob's

        // Unmapping gives the bytes back.
        await alice.UnmapRegionAsync(new UnmapRegionRequest { Name = second });
        await alice.MapRegionAsync(new MapRegionRequest { Name = third, Size = 4096, CreateIfMissing = true });
        // Mapping an existing region is charged to its owner, not to the caller: bob mapping alice's region hits alice's quota.
        await alice.SetRegionAccessAsync(new SetRegionAccessRequest
        {
            Name = second,
            Entries = { new RegionAccessEntry { Subject = "sub:bob", Rights = new RegionRights { Read = true } } },
        });
        await AssertError(async () => await bob.MapRegionAsync(new MapRegionRequest { Name = second }), StatusCode.ResourceExhausted, "MAPPED_BYTES_QUOTA");
    }

    [Fact]
    public async Task Negative_quotas_are_refused_at_start()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => StartAsync(s => s["PmemService:MaxRegionsPerIdentity"] = "-1"));
        Assert.Contains("MaxRegionsPerIdentity", e.ToString(), StringComparison.Ordinal);
        e = await Assert.ThrowsAnyAsync<Exception>(() => StartAsync(s => s["PmemService:RegionSuperusers:0"] = "gid:5"));
        Assert.Contains("RegionSuperusers", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_region_from_before_per_region_access_is_visible_to_superusers_only_until_it_gets_an_owner()
    {
        var root = PmemTestServer.NewRoot();
        var pool = Path.Combine(root, "pool");
        Directory.CreateDirectory(pool);
        var legacy = UniqueName("legacy");
        await File.WriteAllBytesAsync(Path.Combine(pool, legacy), new byte[4096]); // no user.pmem.acl
        await using var server = await StartAsync(s => s["PmemService:PoolPath"] = pool);
        var started = Assert.Single(server.Logs.WithEventName("RegionAccessMode"));
        Assert.Equal("1", started.Properties["Legacy"].ToString());
        var alice = As(server, "alice");
        await AssertError(async () => await alice.GetRegionAsync(new GetRegionRequest { Name = legacy }), StatusCode.NotFound, "REGION_NOT_FOUND");
        Assert.DoesNotContain((await alice.ListRegionsAsync(new ListRegionsRequest())).Regions, r => r.Name == legacy);

        // The test process is uid 0 on the Unix socket: a superuser (RootIsRegionSuperuser).
        var asRoot = (await server.Uds.GetRegionAsync(new GetRegionRequest { Name = legacy })).Region;
        Assert.Equal(string.Empty, asRoot.Owner);
        await server.Uds.SetRegionAccessAsync(new SetRegionAccessRequest { Name = legacy, Owner = "sub:alice" });
        Assert.Equal("sub:alice", (await alice.GetRegionAsync(new GetRegionRequest { Name = legacy })).Region.Owner);
    }
}
