using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using Grpc.Health.V1;
using PmemService.Contracts.V1;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>A fact that needs a second real Unix user: skipped, with the reason, unless the tests run as root with useradd and setpriv.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        var euid = File.ReadLines("/proc/self/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[2];
        if (euid != "0" || !File.Exists("/usr/sbin/useradd") || !File.Exists("/usr/bin/setpriv") || !File.Exists("/usr/bin/curl"))
        {
            Skip = "needs root (to create a second Unix user with useradd and run children as it with setpriv) and curl; CI runs as root";
        }
    }
}

/// <summary>Issue 12: safe defaults, SO_PEERCRED identity and the uid/gid allow-list, against a real Kestrel server.</summary>
public sealed class SecurityTests
{
    private const string OtherUser = "pmem-sec-test";

    private static UnixFileMode Mode(string octal) => (UnixFileMode)Convert.ToInt32(octal, 8);

    /// <summary>The test process's real uid and gid (from /proc/self/status).</summary>
    private static (uint Uid, uint Gid) Self()
    {
        uint Field(string name) => uint.Parse(
            File.ReadLines("/proc/self/status").First(l => l.StartsWith(name + ":", StringComparison.Ordinal))
                .Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return (Field("Uid"), Field("Gid"));
    }

    /// <summary>Starts a server with the service's own default for AllowDataPlaneOverTcp (the test server sets it to true).</summary>
    private static Task<PmemTestServer> StartWithDefaultsAsync(Action<Dictionary<string, string?>>? configure = null, string? root = null) =>
        PmemTestServer.StartAsync(s =>
        {
            s.Remove("PmemService:AllowDataPlaneOverTcp");
            configure?.Invoke(s);
        }, root);

    [Fact]
    public async Task By_default_the_data_plane_is_only_on_the_unix_socket_and_tcp_serves_health()
    {
        await using var server = await StartWithDefaultsAsync();
        Assert.False(new PmemServiceOptions().AllowDataPlaneOverTcp);
        var name = UniqueName("deftcp");
        await CreateAsync(server.Uds, name, 4096);

        await AssertError(async () => await server.Tcp.GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.PermissionDenied, "UNIX_SOCKET_REQUIRED");
        await AssertError(async () => await server.Tcp.ListRegionsAsync(new ListRegionsRequest()), StatusCode.PermissionDenied, "UNIX_SOCKET_REQUIRED");
        await AssertError(async () => await server.Tcp.MapRegionAsync(new MapRegionRequest { Name = UniqueName("deftcp"), Size = 4096, CreateIfMissing = true }), StatusCode.PermissionDenied, "UNIX_SOCKET_REQUIRED");
        await AssertError(async () => await server.Tcp.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true }), StatusCode.PermissionDenied, "UNIX_SOCKET_REQUIRED");
        await AssertError(async () => await server.Tcp.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 16 }), StatusCode.PermissionDenied, "UNIX_SOCKET_REQUIRED");
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving,
            (await new Health.HealthClient(server.TcpChannel).CheckAsync(new HealthCheckRequest { Service = "readiness" })).Status);
        Assert.True((await server.Uds.GetRegionAsync(new GetRegionRequest { Name = name })).Region.Mapped);
        Assert.Empty(server.Logs.WithEventName("DataPlaneOverTcpUnauthenticated"));
    }

    [Fact]
    public async Task Opting_in_to_unauthenticated_tcp_data_plane_warns()
    {
        await using var server = await PmemTestServer.StartAsync(s => s["PmemService:AllowDataPlaneOverTcp"] = "true");
        var name = UniqueName("optin");
        await CreateAsync(server.Tcp, name, 4096);
        Assert.Single(server.Logs.WithEventName("DataPlaneOverTcpUnauthenticated"));
    }

    [Fact]
    public async Task Pool_is_created_0700_and_region_files_0600()
    {
        await using var server = await StartWithDefaultsAsync();
        var name = UniqueName("modes");
        await CreateAsync(server.Uds, name, 4096);
        Assert.Equal(Mode("700"), File.GetUnixFileMode(server.PoolPath));
        Assert.Equal(Mode("600"), File.GetUnixFileMode(Path.Combine(server.PoolPath, name)));
        Assert.Empty(server.Logs.WithEventName("PoolWritableByOthers"));
        Assert.Empty(server.Logs.WithEventName("PoolOpenToOthers"));
    }

    [Fact]
    public async Task With_group_access_the_pool_is_created_0750_and_region_files_0640()
    {
        await using var server = await StartWithDefaultsAsync(s => s["PmemService:PoolGroupAccess"] = "true");
        var name = UniqueName("gmodes");
        await CreateAsync(server.Uds, name, 4096);
        Assert.Equal(Mode("750"), File.GetUnixFileMode(server.PoolPath));
        Assert.Equal(Mode("640"), File.GetUnixFileMode(Path.Combine(server.PoolPath, name)));
        Assert.Empty(server.Logs.WithEventName("PoolOpenToOthers"));
    }

    [Fact]
    public async Task A_pool_others_can_write_gets_a_start_up_warning_and_keeps_its_mode()
    {
        var root = PmemTestServer.NewRoot();
        var pool = Path.Combine(root, "pool");
        Directory.CreateDirectory(pool);
        File.SetUnixFileMode(pool, Mode("777"));
        await using var server = await StartWithDefaultsAsync(null, root);
        Assert.Single(server.Logs.WithEventName("PoolWritableByOthers"));
        Assert.Single(server.Logs.WithEventName("PoolOpenToOthers"));
        Assert.Equal(Mode("777"), File.GetUnixFileMode(pool)); // warned, not chmod'ed
        var name = UniqueName("mode777");
        await CreateAsync(server.Uds, name, 4096);
        Assert.Equal(Mode("600"), File.GetUnixFileMode(Path.Combine(pool, name)));
    }

    [Fact]
    public async Task Allow_list_admits_by_uid_or_gid_and_denies_others_with_peer_not_allowed()
    {
        var (uid, gid) = Self();
        await using (var byUid = await StartWithDefaultsAsync(s => s["PmemService:AllowedUids:0"] = uid.ToString(CultureInfo.InvariantCulture)))
        {
            await CreateAsync(byUid.Uds, UniqueName("allow"), 4096);
        }

        await using (var byGid = await StartWithDefaultsAsync(s => s["PmemService:AllowedGids:0"] = gid.ToString(CultureInfo.InvariantCulture)))
        {
            await CreateAsync(byGid.Uds, UniqueName("allow"), 4096);
        }

        // A region file already in the pool (written directly), which the denied caller tries to delete.
        var root = PmemTestServer.NewRoot();
        var name = UniqueName("allow");
        Directory.CreateDirectory(Path.Combine(root, "pool"), Mode("700"));
        await File.WriteAllBytesAsync(Path.Combine(root, "pool", name), new byte[4096]);
        await using var others = await StartWithDefaultsAsync(s =>
        {
            s["PmemService:AllowedUids:0"] = (uid + 4242).ToString(CultureInfo.InvariantCulture);
            s["PmemService:AllowedGids:0"] = (gid + 4242).ToString(CultureInfo.InvariantCulture);
        }, root);
        await AssertError(async () => await others.Uds.GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.PermissionDenied, "PEER_NOT_ALLOWED");
        await AssertError(async () => await others.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true }), StatusCode.PermissionDenied, "PEER_NOT_ALLOWED");
        using (var stream = others.Uds.StreamWriteRegion())
        {
            var error = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                try
                {
                    await stream.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name } });
                    await stream.RequestStream.CompleteAsync();
                }
                catch (RpcException)
                {
                    // The service answered first: its status is the call's.
                }

                await stream;
            });
            Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
        }

        // Health is not gated by the allow-list; the region is untouched.
        await new Health.HealthClient(others.UdsChannel).CheckAsync(new HealthCheckRequest());
        Assert.True(File.Exists(Path.Combine(others.PoolPath, name)));

        var denial = others.Logs.WithEventName("PeerNotAllowed").First();
        Assert.Equal(uid.ToString(CultureInfo.InvariantCulture), denial.Properties["PeerUid"].ToString());
        Assert.Equal(gid.ToString(CultureInfo.InvariantCulture), denial.Properties["PeerGid"].ToString());
        Assert.Equal(Environment.ProcessId.ToString(CultureInfo.InvariantCulture), denial.Properties["PeerPid"].ToString());
    }

    [Fact]
    public async Task Unix_socket_requests_carry_the_peer_identity_on_their_trace()
    {
        var (uid, gid) = Self();
        var seen = new System.Collections.Concurrent.ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = seen.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var server = await StartWithDefaultsAsync();
        var name = UniqueName("trace");
        await CreateAsync(server.Uds, name, 4096);

        var tagged = seen.Where(a => a.GetTagItem("pmem.transport") as string == "unix" && a.GetTagItem("pmem.peer.pid") is int pid && pid == Environment.ProcessId).ToList();
        Assert.NotEmpty(tagged);
        Assert.All(tagged, a =>
        {
            Assert.Equal(uid, (uint)a.GetTagItem("pmem.peer.uid")!);
            Assert.Equal(gid, (uint)a.GetTagItem("pmem.peer.gid")!);
        });
    }

    [Fact]
    public async Task Streams_per_identity_are_limited_and_released_when_they_end()
    {
        await using var server = await StartWithDefaultsAsync(s => s["PmemService:MaxConcurrentStreamsPerIdentity"] = "1");
        var name = UniqueName("streams");
        await CreateAsync(server.Uds, name, 8192);

        async Task ReadAll()
        {
            using var read = server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name });
            while (await read.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        }

        // An open upload holds the only stream permit of this uid. Its handler starts some time after the
        // header is sent; a probe that gets there first takes the permit and the upload is the one refused,
        // so such an upload is replaced by a new one (bounded) until the upload holds the permit.
        AsyncClientStreamingCall<StreamWriteRegionRequest, StreamWriteRegionResponse>? upload = null;
        RpcException? refused = null;
        try
        {
            for (var attempt = 0; attempt < 100 && refused is null; attempt++)
            {
                if (upload is null || upload.ResponseAsync.IsCompleted)
                {
                    if (upload is not null)
                    {
                        var lost = await Assert.ThrowsAsync<RpcException>(() => upload.ResponseAsync);
                        Assert.Equal(StatusCode.ResourceExhausted, lost.StatusCode); // the probe won the race
                        upload.Dispose();
                    }

                    upload = server.Uds.StreamWriteRegion();
                    await upload.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name } });
                }

                try
                {
                    await ReadAll();
                    await Task.Delay(100);
                }
                catch (RpcException e)
                {
                    refused = e;
                }
            }

            Assert.NotNull(refused);
            Assert.NotNull(upload);
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Equal("STREAM_LIMIT", refused.GetRpcStatus()!.GetDetail<Google.Rpc.ErrorInfo>()!.Reason);
            await server.Uds.GetRegionAsync(new GetRegionRequest { Name = name }); // unary calls are not limited
            Assert.NotEmpty(server.Logs.WithEventName("StreamLimitReached"));

            await upload.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = Google.Protobuf.ByteString.CopyFromUtf8("abc") });
            await upload.RequestStream.CompleteAsync();
            Assert.Equal(3UL, (await upload).BytesPersisted);
        }
        finally
        {
            upload?.Dispose();
        }

        await ReadAll(); // the permit came back when the upload ended
    }

    // ---- a second real Unix user ----------------------------------------------------------------

    /// <summary>Creates (once) a system user for the cross-user tests; null with the reason when the test cannot run as root.</summary>
    private static async Task<(uint Uid, uint Gid)?> OtherUserAsync()
    {
        if (Self().Uid != 0)
        {
            return null;
        }

        if ((await RunAsync("id", ["-u", OtherUser])).Code != 0)
        {
            var add = await RunAsync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", OtherUser]);
            Assert.True(add.Code == 0 || add.Code == 9, $"useradd failed: {add.Output}"); // 9: created concurrently
        }

        var u = await RunAsync("id", ["-u", OtherUser]);
        var g = await RunAsync("id", ["-g", OtherUser]);
        return (uint.Parse(u.Output.Trim(), CultureInfo.InvariantCulture), uint.Parse(g.Output.Trim(), CultureInfo.InvariantCulture));
    }

    /// <summary>Runs <paramref name="program"/> as <see cref="OtherUser"/> (setpriv: real and effective ids, no supplementary groups).</summary>
    private static Task<(int Code, string Output)> RunAsOtherAsync((uint Uid, uint Gid) other, string program, params string[] args) =>
        RunProcessAsync(other, program, args);

    private static Task<(int Code, string Output)> RunAsync(string program, string[] args) => RunProcessAsync(null, program, args);

    /// <summary>A gRPC call (empty request message) over the Unix socket with curl, as the other user; returns curl's exit code and the response headers and trailers.</summary>
    private static Task<(int Code, string Output)> CurlGrpcAsOtherAsync((uint Uid, uint Gid) other, string socket, string method) =>
        CurlGrpcAsOtherAsync(other, socket, method, []);

    /// <summary>The same with <paramref name="message"/> (a serialized request) as the one message frame.</summary>
    private static async Task<(int Code, string Output)> CurlGrpcAsOtherAsync((uint Uid, uint Gid) other, string socket, string method, byte[] message)
    {
        // One gRPC message frame: not compressed, big-endian length, the message.
        var frame = Path.Combine(Path.GetDirectoryName(socket)!, $"request-{Guid.NewGuid():N}.bin");
        var bytes = new byte[5 + message.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), message.Length);
        message.CopyTo(bytes.AsSpan(5));
        await File.WriteAllBytesAsync(frame, bytes);
        File.SetUnixFileMode(frame, Mode("644"));
        return await RunAsOtherAsync(other, "curl", "-sS", "--http2-prior-knowledge", "--unix-socket", socket,
            "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@" + frame,
            "-D", "-", "-o", "/dev/null", "--max-time", "30", $"http://localhost{method}");
    }

    [RootFact]
    public async Task Another_user_cannot_read_region_files_even_in_a_pool_it_can_enter()
    {
        var other = await OtherUserAsync();
        Assert.NotNull(other);
        var root = PmemTestServer.NewRoot();
        var pool = Path.Combine(root, "pool");
        Directory.CreateDirectory(pool);
        File.SetUnixFileMode(root, Mode("755"));
        File.SetUnixFileMode(pool, Mode("755")); // an operator's mistake: the pool is open to everyone
        await using var server = await StartWithDefaultsAsync(null, root);
        Assert.Single(server.Logs.WithEventName("PoolOpenToOthers"));
        var name = UniqueName("secret");
        await CreateAsync(server.Uds, name, 4096);
        await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = Google.Protobuf.ByteString.CopyFromUtf8("secret bytes") });

        var list = await RunAsOtherAsync(other!.Value, "ls", pool);
        Assert.True(list.Code == 0 && list.Output.Contains(name, StringComparison.Ordinal), $"the other user should be able to list the 0755 pool: {list.Output}");
        var read = await RunAsOtherAsync(other.Value, "cat", Path.Combine(pool, name));
        Assert.NotEqual(0, read.Code);
        Assert.Contains("Permission denied", read.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("secret bytes", read.Output, StringComparison.Ordinal);
        // The control: the same command as root reads it (so the denial is the file's 0600, not a broken command).
        Assert.Contains("secret bytes", (await RunAsync("cat", [Path.Combine(pool, name)])).Output, StringComparison.Ordinal);
    }

    [RootFact]
    public async Task Another_user_is_refused_by_the_socket_mode()
    {
        var other = await OtherUserAsync();
        Assert.NotNull(other);
        var root = PmemTestServer.NewRoot();
        File.SetUnixFileMode(root, Mode("755"));
        await using var server = await StartWithDefaultsAsync(null, root);
        Assert.Equal(Mode("660"), File.GetUnixFileMode(server.SocketPath));

        var call = await CurlGrpcAsOtherAsync(other!.Value, server.SocketPath, "/pmem.v1.PmemService/ListRegions");
        Assert.Equal(7, call.Code); // curl: failed to connect (connect(2) on the 0660 socket: EACCES)
        // The control: with a 0666 socket the same command connects and gets an answer.
        await using var open = await StartWithDefaultsAsync(s => s["PmemService:UnixSocketMode"] = "0666");
        File.SetUnixFileMode(open.Root, Mode("755"));
        var answered = await CurlGrpcAsOtherAsync(other.Value, open.SocketPath, "/grpc.health.v1.Health/Check");
        Assert.True(answered.Code != 7, $"curl should connect to the 0666 socket: {answered.Output}");
    }

    [RootFact]
    public async Task Another_user_is_refused_by_the_allow_list_and_the_denial_names_its_uid()
    {
        var other = await OtherUserAsync();
        Assert.NotNull(other);
        var root = PmemTestServer.NewRoot();
        File.SetUnixFileMode(root, Mode("755"));
        await using var server = await StartWithDefaultsAsync(s =>
        {
            s["PmemService:UnixSocketMode"] = "0666"; // the socket mode lets everyone connect; the allow-list decides
            s["PmemService:AllowedUids:0"] = "0";
        }, root);
        var name = UniqueName("allowed");
        await CreateAsync(server.Uds, name, 4096); // root is allowed

        var call = await CurlGrpcAsOtherAsync(other!.Value, server.SocketPath, "/pmem.v1.PmemService/ListRegions");
        Assert.NotEqual(7, call.Code);
        Assert.Contains("grpc-status: 7", call.Output, StringComparison.OrdinalIgnoreCase); // PERMISSION_DENIED
        var denial = Assert.Single(server.Logs.WithEventName("PeerNotAllowed"));
        Assert.Equal(other.Value.Uid.ToString(CultureInfo.InvariantCulture), denial.Properties["PeerUid"].ToString());
        Assert.Equal(other.Value.Gid.ToString(CultureInfo.InvariantCulture), denial.Properties["PeerGid"].ToString());
    }

    [RootFact]
    public async Task A_write_from_a_user_the_allow_list_refuses_never_reaches_the_region()
    {
        // WriteRegion's deserializer copies into the mapping before interceptors run: it must admit the
        // caller itself first, or a refused caller's bytes would land although the call fails.
        var other = await OtherUserAsync();
        Assert.NotNull(other);
        var root = PmemTestServer.NewRoot();
        File.SetUnixFileMode(root, Mode("755"));
        await using var server = await StartWithDefaultsAsync(s =>
        {
            s["PmemService:UnixSocketMode"] = "0666";
            s["PmemService:AllowedUids:0"] = "0";
        }, root);
        var name = UniqueName("guarded");
        await CreateAsync(server.Uds, name, 4096);

        var request = new WriteRegionRequest { Name = name, Offset = 0, Data = Google.Protobuf.ByteString.CopyFrom(Enumerable.Repeat((byte)0xAB, 64).ToArray()) };
        var call = await CurlGrpcAsOtherAsync(other!.Value, server.SocketPath, "/pmem.v1.PmemService/WriteRegion", Google.Protobuf.MessageExtensions.ToByteArray(request));
        Assert.NotEqual(7, call.Code);
        Assert.Contains("grpc-status: 7", call.Output, StringComparison.OrdinalIgnoreCase); // PERMISSION_DENIED

        var stored = await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 0, Length = 64 });
        Assert.All(stored.Data.ToByteArray(), b => Assert.Equal(0, b));
    }
}
