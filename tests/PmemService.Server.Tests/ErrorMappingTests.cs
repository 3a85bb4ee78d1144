using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Pmem2;
using PmemService.Server.Internal;
using Status = Grpc.Core.Status;

namespace PmemService.Server.Tests;

/// <summary>The interceptor itself: every handler kind maps every exception, none escapes as UNKNOWN.</summary>
public sealed class ErrorMappingTests
{
    private static ErrorMappingInterceptor Create(string environment = "Production") =>
        new(NullLogger<ErrorMappingInterceptor>.Instance, Options.Create(new PmemServiceOptions()), new FakeEnvironment(environment));

    private sealed class FakeEnvironment(string name) : IHostEnvironment
    {
        public string EnvironmentName { get; set; } = name;
        public string ApplicationName { get; set; } = "tests";
        public string ContentRootPath { get; set; } = AppContext.BaseDirectory;
        public Microsoft.Extensions.FileProviders.IFileProvider ContentRootFileProvider { get; set; } = null!;
    }

    private sealed class FakeContext : ServerCallContext
    {
        private readonly Metadata _trailers = [];
        protected override string MethodCore => "/pmem.v1.PmemService/WriteRegion";
        protected override string HostCore => "localhost";
        protected override string PeerCore => "unix:";
        protected override DateTime DeadlineCore => DateTime.MaxValue;
        protected override Metadata RequestHeadersCore => [];
        protected override CancellationToken CancellationTokenCore => CancellationToken.None;
        protected override Metadata ResponseTrailersCore => _trailers;
        protected override Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, []);
        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();
        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }

    private static ErrorInfo Info(RpcException e) => e.GetRpcStatus()!.GetDetail<ErrorInfo>();

    public static TheoryData<Exception, StatusCode, string> Cases => new()
    {
        { new Pmem2Exception(Pmem2ErrorCode.GranularityNotSupported, "no MAP_SYNC"), StatusCode.FailedPrecondition, "GRANULARITY_NOT_SUPPORTED" },
        { new Pmem2Exception(Pmem2ErrorCode.SourceEmpty, "empty"), StatusCode.FailedPrecondition, "REGION_NOT_MAPPABLE" },
        { new Pmem2Exception(Pmem2ErrorCode.MapRange, "range"), StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS" },
        { new Pmem2Exception(Pmem2ErrorCode.IoFail, "eio"), StatusCode.DataLoss, "IO_ERROR" },
        { new Pmem2Exception((Pmem2ErrorCode)(-5), "EIO"), StatusCode.DataLoss, "IO_ERROR" },
        { new Pmem2Exception((Pmem2ErrorCode)(-28), "ENOSPC"), StatusCode.ResourceExhausted, "POOL_SPACE_EXHAUSTED" },
        { new Pmem2Exception((Pmem2ErrorCode)(-12), "ENOMEM"), StatusCode.ResourceExhausted, "SYSTEM_RESOURCES_EXHAUSTED" },
        { new Pmem2Exception((Pmem2ErrorCode)(-13), "EACCES"), StatusCode.PermissionDenied, "ACCESS_DENIED" },
        { new Pmem2Exception(Pmem2ErrorCode.MappingExists, "odd"), StatusCode.Internal, "PMEM2_ERROR" },
        { new UnauthorizedAccessException("denied"), StatusCode.PermissionDenied, "ACCESS_DENIED" },
        { new FileNotFoundException("gone"), StatusCode.NotFound, "REGION_NOT_FOUND" },
        { new InvalidOperationException("bug"), StatusCode.Internal, "INTERNAL" },
        { new NullReferenceException(), StatusCode.Internal, "INTERNAL" },
        { PmemServiceException.ShuttingDown(), StatusCode.Unavailable, "SHUTTING_DOWN" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Every_handler_kind_maps_the_exception(Exception thrown, StatusCode code, string reason)
    {
        var interceptor = Create();
        var context = new FakeContext();
        var calls = new Func<Task>[]
        {
            () => interceptor.UnaryServerHandler<string, string>("x", context, (_, _) => throw thrown),
            () => interceptor.UnaryServerHandler<string, string>("x", context, async (_, _) => { await Task.Yield(); throw thrown; }),
            () => interceptor.ClientStreamingServerHandler<string, string>(null!, context, async (_, _) => { await Task.Yield(); throw thrown; }),
            () => interceptor.ServerStreamingServerHandler<string, string>("x", null!, context, async (_, _, _) => { await Task.Yield(); throw thrown; }),
            () => interceptor.DuplexStreamingServerHandler<string, string>(null!, null!, context, async (_, _, _) => { await Task.Yield(); throw thrown; }),
        };
        foreach (var call in calls)
        {
            var e = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(code, e.StatusCode);
            Assert.Equal(reason, Info(e).Reason);
            Assert.Equal("pmem.v1", Info(e).Domain);
        }
    }

    [Fact]
    public async Task Internal_errors_hide_details_outside_development()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => Create().UnaryServerHandler<string, string>("x", new FakeContext(), (_, _) => throw new InvalidOperationException("secret path /x")));
        Assert.DoesNotContain("secret", e.Status.Detail, StringComparison.Ordinal);
        e = await Assert.ThrowsAsync<RpcException>(() => Create("Development").UnaryServerHandler<string, string>("x", new FakeContext(), (_, _) => throw new InvalidOperationException("secret path /x")));
        Assert.Contains("secret", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Interrupted_stream_errors_carry_the_persisted_offset_in_trailer_and_metadata()
    {
        var error = new PmemServiceException(StatusCode.Unavailable, PmemErrorReasons.ShuttingDown, "stop") { PersistedOffset = 1234, BytesPersisted = 234 };
        var e = ErrorMappingInterceptor.Build(error);
        Assert.Equal("1234", e.Trailers.GetValue("pmem-persisted-offset"));
        Assert.Equal("1234", Info(e).Metadata["persisted_offset"]);
        Assert.Equal("234", Info(e).Metadata["bytes_persisted"]);
        Assert.NotNull(e.GetRpcStatus()!.GetDetail<RetryInfo>());
    }

    [Fact]
    public async Task RpcExceptions_pass_through_untouched()
    {
        var original = new RpcException(new Status(StatusCode.Aborted, "as is"));
        var e = await Assert.ThrowsAsync<RpcException>(() => Create().UnaryServerHandler<string, string>("x", new FakeContext(), (_, _) => throw original));
        Assert.Same(original, e);
    }
}
