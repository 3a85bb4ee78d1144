namespace PmemService.Server;

/// <summary>
/// Claims of the caller identity set as <c>HttpContext.User</c> (and so
/// <c>ServerCallContext.GetHttpContext().User</c>) for calls on the Unix socket, from SO_PEERCRED:
/// authentication type "unix-peercred", name "uid:N".
/// </summary>
public static class PmemClaimTypes
{
    /// <summary>The peer process's effective uid at connect time.</summary>
    public const string Uid = "pmem/uid";

    /// <summary>The peer process's effective (primary) gid at connect time.</summary>
    public const string Gid = "pmem/gid";

    /// <summary>The peer process's pid at connect time (informational: pids are reused).</summary>
    public const string Pid = "pmem/pid";
}
