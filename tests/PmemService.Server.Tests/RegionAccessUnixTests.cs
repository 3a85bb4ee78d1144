using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using PmemService.Contracts.V1;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>
/// Issue 12 items 4 and 6 on the Unix socket with a second real user (created with useradd, its calls made
/// by curl run under setpriv — raw gRPC frames, so the zero-copy WriteRegion deserializer path and
/// OpenDirect are exercised exactly as a hostile local process would). Skipped, with the reason, unless root.
/// </summary>
public sealed class RegionAccessUnixTests
{
    private const string OtherUser = "pmem-sec-test"; // the same user SecurityTests creates

    private sealed record Answer(int CurlCode, int? GrpcStatus, string? Reason, string Headers, byte[] Body);

    private static UnixFileMode Mode(string octal) => (UnixFileMode)Convert.ToInt32(octal, 8);

    private static async Task<(uint Uid, uint Gid)> OtherUserAsync()
    {
        if ((await RunAsync(null, "id", "-u", OtherUser)).Code != 0)
        {
            var add = await RunAsync(null, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", OtherUser);
            Assert.True(add.Code == 0 || add.Code == 9, $"useradd failed: {add.Output}"); // 9: created concurrently
        }

        var u = await RunAsync(null, "id", "-u", OtherUser);
        var g = await RunAsync(null, "id", "-g", OtherUser);
        return (uint.Parse(u.Output.Trim(), CultureInfo.InvariantCulture), uint.Parse(g.Output.Trim(), CultureInfo.InvariantCulture));
    }

    private static Task<(int Code, string Output)> RunAsync((uint Uid, uint Gid)? user, string program, params string[] args) =>
        RunProcessAsync(user, program, args);

    /// <summary>A gRPC call over the Unix socket with curl as <paramref name="user"/>: one frame per message (a client stream when several).</summary>
    private static async Task<Answer> CallAsync((uint Uid, uint Gid) user, string socket, string method, params IMessage[] messages)
    {
        var dir = Path.GetDirectoryName(socket)!;
        var id = Guid.NewGuid().ToString("N");
        var request = Path.Combine(dir, $"request-{id}.bin");
        var body = Path.Combine(dir, $"body-{id}.bin");
        using (var file = File.Create(request))
        {
            foreach (var message in messages)
            {
                var bytes = message.ToByteArray();
                var prefix = new byte[5];
                System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(prefix.AsSpan(1), bytes.Length);
                file.Write(prefix);
                file.Write(bytes);
            }
        }

        File.SetUnixFileMode(request, Mode("644"));
        await File.WriteAllBytesAsync(body, []);
        File.SetUnixFileMode(body, Mode("666"));
        var (code, output) = await RunAsync(user, "curl", "-sS", "--http2-prior-knowledge", "--unix-socket", socket,
            "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@" + request,
            "-D", "-", "-o", body, "--max-time", "30", $"http://localhost/pmem.v1.PmemService/{method}");
        var responseBody = await File.ReadAllBytesAsync(body);
        File.Delete(request);
        File.Delete(body);

        int? status = null;
        string? reason = null;
        foreach (var line in output.Split('\n'))
        {
            var trimmed = line.Trim();
            if (trimmed.StartsWith("grpc-status:", StringComparison.OrdinalIgnoreCase))
            {
                status = int.Parse(trimmed["grpc-status:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
            else if (trimmed.StartsWith("grpc-status-details-bin:", StringComparison.OrdinalIgnoreCase))
            {
                var b64 = trimmed["grpc-status-details-bin:".Length..].Trim();
                b64 = b64.PadRight(b64.Length + ((4 - (b64.Length % 4)) % 4), '=');
                reason = Google.Rpc.Status.Parser.ParseFrom(Convert.FromBase64String(b64)).Details
                    .Where(d => d.Is(ErrorInfo.Descriptor)).Select(d => d.Unpack<ErrorInfo>().Reason).FirstOrDefault();
            }
        }

        Assert.NotEqual(7, code); // curl could connect (the socket is 0666 here)
        return new Answer(code, status, reason, output, responseBody);
    }

    private static Task<PmemTestServer> StartOpenSocketAsync(Action<Dictionary<string, string?>>? configure = null)
    {
        var root = PmemTestServer.NewRoot();
        File.SetUnixFileMode(root, Mode("755"));
        return PmemTestServer.StartAsync(s =>
        {
            s.Remove("PmemService:AllowDataPlaneOverTcp");
            s["PmemService:UnixSocketMode"] = "0666"; // everyone may connect: the access lists decide
            configure?.Invoke(s);
        }, root);
    }

    /// <summary>Every region RPC as a raw request, with the right it needs.</summary>
    private static IEnumerable<(string Method, string Needs, IMessage[] Messages)> EveryRegionRpc(string name)
    {
        var data = ByteString.CopyFrom(Enumerable.Repeat((byte)0xAB, 64).ToArray());
        yield return ("MapRegion", "r", [new MapRegionRequest { Name = name }]);
        yield return ("GetRegion", "r", [new GetRegionRequest { Name = name }]);
        yield return ("ReadRegion", "r", [new ReadRegionRequest { Name = name, Length = 64 }]);
        yield return ("StreamReadRegion", "r", [new StreamReadRegionRequest { Name = name }]);
        yield return ("OpenDirect", "r", [new OpenDirectRequest { Name = name, Access = DirectAccess.ReadOnly }]);
        yield return ("WriteRegion", "w", [new WriteRegionRequest { Name = name, Data = data }]);
        yield return ("WriteRegion", "w", [new WriteRegionRequest { Name = name, Data = data, DeferPersist = true }]);
        yield return ("StreamWriteRegion", "w", [new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name } }, new StreamWriteRegionRequest { Data = data }]);
        yield return ("PersistRegion", "w", [new PersistRegionRequest { Name = name }]);
        yield return ("SetRegionContent", "w", [new SetRegionContentRequest { Name = name, ContentLength = 1, ContentCrc64 = "0x1" }]);
        yield return ("OpenDirect", "w", [new OpenDirectRequest { Name = name, Access = DirectAccess.ReadWrite }]);
        yield return ("GetRegionAccess", "a", [new GetRegionAccessRequest { Name = name }]);
        yield return ("SetRegionAccess", "a", [new SetRegionAccessRequest { Name = name, Owner = "uid:1" }]);
        yield return ("DeleteRegion", "a", [new DeleteRegionRequest { Name = name, Force = true }]);
        yield return ("UnmapRegion", "r", [new UnmapRegionRequest { Name = name }]);
    }

    [RootFact]
    public async Task Another_user_sees_none_of_roots_regions_and_none_of_its_writes_land()
    {
        var other = await OtherUserAsync();
        await using var server = await StartOpenSocketAsync();
        var name = UniqueName("roots");
        await CreateAsync(server.Uds, name, 4096);
        var content = Pattern(64, 42);
        await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(content) });

        foreach (var (method, _, messages) in EveryRegionRpc(name))
        {
            var answer = await CallAsync(other, server.SocketPath, method, messages);
            Assert.True(answer.GrpcStatus == 5 && answer.Reason == "REGION_NOT_FOUND", $"{method}: {answer.Headers}");
        }

        var create = await CallAsync(other, server.SocketPath, "MapRegion", new MapRegionRequest { Name = name, Size = 4096, CreateIfMissing = true });
        Assert.True(create.GrpcStatus == 7 && create.Reason == "REGION_ACCESS_DENIED", create.Headers);
        var list = await CallAsync(other, server.SocketPath, "ListRegions", new ListRegionsRequest());
        Assert.True(list.GrpcStatus == 0, list.Headers);
        Assert.True(list.Body.Length >= 5, "ListRegions answered with a message");
        Assert.DoesNotContain(name, System.Text.Encoding.ASCII.GetString(list.Body), StringComparison.Ordinal);

        Assert.Equal(content, (await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 64 })).Data.ToByteArray());
        var info = (await server.Uds.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
        Assert.Equal("uid:0", info.Owner);
        Assert.Equal(1u, info.MapReferences);
        Assert.Equal(0u, info.DirectLeases);
        Assert.Contains(server.Logs.WithEventName("RegionAccessDenied"), e => e.Properties["Identity"].ToString() == $"\"uid:{other.Uid}\"");
    }

    [RootFact]
    public async Task Uid_and_gid_entries_give_a_real_user_exactly_their_rights()
    {
        var other = await OtherUserAsync();
        await using var server = await StartOpenSocketAsync();
        var name = UniqueName("granted");
        await CreateAsync(server.Uds, name, 4096);
        var content = Pattern(64, 43);
        await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(content) });
        await server.Uds.SetRegionAccessAsync(new SetRegionAccessRequest
        {
            Name = name,
            Entries = { new RegionAccessEntry { Subject = $"uid:{other.Uid}", Rights = new RegionRights { Read = true } } },
        });

        foreach (var (method, needs, messages) in EveryRegionRpc(name))
        {
            if (method == "UnmapRegion")
            {
                continue; // would drop root's reference
            }

            var answer = await CallAsync(other, server.SocketPath, method, messages);
            if (needs == "r")
            {
                Assert.True(answer.GrpcStatus == 0, $"{method}: {answer.Headers}");
            }
            else
            {
                Assert.True(answer.GrpcStatus == 7 && answer.Reason == "REGION_ACCESS_DENIED", $"{method}: {answer.Headers}");
            }
        }

        var read = await CallAsync(other, server.SocketPath, "ReadRegion", new ReadRegionRequest { Name = name, Length = 64 });
        Assert.Equal(content, ReadRegionResponse.Parser.ParseFrom(read.Body.AsSpan(5).ToArray()).Data.ToByteArray());
        Assert.Equal(content, (await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 64 })).Data.ToByteArray());

        // A gid entry (the user's primary group) with write: the zero-copy socket write now lands.
        await server.Uds.SetRegionAccessAsync(new SetRegionAccessRequest
        {
            Name = name,
            Entries = { new RegionAccessEntry { Subject = $"gid:{other.Gid}", Rights = new RegionRights { Write = true } } },
        });
        var write = await CallAsync(other, server.SocketPath, "WriteRegion", new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(Enumerable.Repeat((byte)0xAB, 64).ToArray()) });
        Assert.True(write.GrpcStatus == 0, write.Headers);
        Assert.All((await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 64 })).Data.ToByteArray(), b => Assert.Equal(0xAB, b));
        var direct = await CallAsync(other, server.SocketPath, "OpenDirect", new OpenDirectRequest { Name = name, Access = DirectAccess.ReadWrite });
        Assert.True(direct.GrpcStatus == 0, direct.Headers);
        var delete = await CallAsync(other, server.SocketPath, "DeleteRegion", new DeleteRegionRequest { Name = name, Force = true });
        Assert.True(delete.GrpcStatus == 7 && delete.Reason == "REGION_ACCESS_DENIED", delete.Headers);
    }

    [RootFact]
    public async Task A_non_root_owner_keeps_its_region_from_root_when_root_is_no_superuser_across_a_restart()
    {
        var other = await OtherUserAsync();
        await using var server = await StartOpenSocketAsync(s => s["PmemService:RootIsRegionSuperuser"] = "false");
        var name = UniqueName("users");
        var create = await CallAsync(other, server.SocketPath, "MapRegion", new MapRegionRequest { Name = name, Size = 4096, CreateIfMissing = true });
        Assert.True(create.GrpcStatus == 0, create.Headers);
        var write = await CallAsync(other, server.SocketPath, "WriteRegion", new WriteRegionRequest { Name = name, Data = ByteString.CopyFromUtf8("mine") });
        Assert.True(write.GrpcStatus == 0, write.Headers);

        for (var round = 0; round < 2; round++)
        {
            // Root (the test process) is an ordinary identity here.
            await AssertError(async () => await server.Uds.GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.NotFound, "REGION_NOT_FOUND");
            await AssertError(async () => await server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true }), StatusCode.NotFound, "REGION_NOT_FOUND");
            Assert.DoesNotContain((await server.Uds.ListRegionsAsync(new ListRegionsRequest())).Regions, r => r.Name == name);
            var access = await CallAsync(other, server.SocketPath, "GetRegionAccess", new GetRegionAccessRequest { Name = name });
            Assert.True(access.GrpcStatus == 0, access.Headers);
            Assert.Equal($"uid:{other.Uid}", GetRegionAccessResponse.Parser.ParseFrom(access.Body.AsSpan(5).ToArray()).Access.Owner);
            await server.StopAsync();
            await server.StartAgainAsync();
        }

        var grant = await CallAsync(other, server.SocketPath, "SetRegionAccess", new SetRegionAccessRequest
        {
            Name = name,
            Entries = { new RegionAccessEntry { Subject = "uid:0", Rights = new RegionRights { Read = true } } },
        });
        Assert.True(grant.GrpcStatus == 0, grant.Headers);
        await server.Uds.MapRegionAsync(new MapRegionRequest { Name = name });
        Assert.Equal("mine", (await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 4 })).Data.ToStringUtf8());
        await AssertError(async () => await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFromUtf8("root") }),
            StatusCode.PermissionDenied, "REGION_ACCESS_DENIED");
        Assert.Equal("mine", (await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 4 })).Data.ToStringUtf8());
    }
}
