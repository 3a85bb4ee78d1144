using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace PmemTests.Shared;

/// <summary>
/// A mounted tests/faultfs/faultfs.py: a FUSE passthrough over a backing directory whose write, fsync,
/// fallocate, ... fail on command (EIO, ENOSPC). The daemon runs under /usr/bin/python3 (Debian's
/// python3-fusepy) as a child process; <see cref="Dispose"/> unmounts it and deletes both directories.
/// </summary>
public sealed class FaultFs : IDisposable
{
    private const string Python = "/usr/bin/python3";
    private readonly Process _daemon;
    private readonly StringBuilder _daemonOutput = new();
    private bool _disposed;

    private FaultFs(string root)
    {
        Root = root;
        Backing = Path.Combine(root, "backing");
        MountPoint = Path.Combine(root, "mnt");
        ControlSocket = Path.Combine(root, "ctl.sock");
        Directory.CreateDirectory(Backing);
        Directory.CreateDirectory(MountPoint);
        var psi = new ProcessStartInfo(Python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { ScriptPath, "mount", Backing, MountPoint, "--control", ControlSocket })
        {
            psi.ArgumentList.Add(a);
        }

        _daemon = Process.Start(psi) ?? throw new InvalidOperationException("could not start faultfs.py");
        _daemon.OutputDataReceived += (_, e) => Append(e.Data);
        _daemon.ErrorDataReceived += (_, e) => Append(e.Data);
        _daemon.BeginOutputReadLine();
        _daemon.BeginErrorReadLine();
    }

    /// <summary>Temporary directory holding the backing directory, the mount point and the control socket.</summary>
    public string Root { get; }

    /// <summary>Where the bytes really live (read it to see what reached "storage").</summary>
    public string Backing { get; }

    /// <summary>The FUSE mount.</summary>
    public string MountPoint { get; }

    public string ControlSocket { get; }

    /// <summary>tests/faultfs/faultfs.py, found by walking up from the test binary.</summary>
    public static string ScriptPath
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "tests", "faultfs", "faultfs.py");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }

            throw new FileNotFoundException("tests/faultfs/faultfs.py not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>True when CI=true (or 1): then missing FUSE is a failure, not a skip.</summary>
    public static bool InCi =>
        Environment.GetEnvironmentVariable("CI") is { } ci && (ci.Equals("true", StringComparison.OrdinalIgnoreCase) || ci == "1");

    /// <summary>
    /// Why FUSE fault tests cannot run here, or null. Only an absent /dev/fuse outside CI skips; in CI
    /// (and whenever /dev/fuse exists) the tests run and fail loudly if the mount does not work.
    /// </summary>
    public static string? SkipReason =>
        !File.Exists("/dev/fuse") && !InCi
            ? "/dev/fuse is absent and CI is not set: the FUSE fault tests need /dev/fuse, fuse3 and python3-fusepy (installed by .ci/run)"
            : null;

    /// <summary>Mounts a fresh faultfs under a new directory of <paramref name="parent"/> (default /tmp).</summary>
    public static FaultFs Mount(string? parent = null)
    {
        var root = Path.Combine(parent ?? "/tmp", "faultfs-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(root);
        var fs = new FaultFs(root);
        try
        {
            fs.WaitReady(TimeSpan.FromSeconds(20));
            return fs;
        }
        catch
        {
            fs.Dispose();
            throw;
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_daemonOutput)
        {
            _daemonOutput.AppendLine(line);
        }
    }

    /// <summary>What the daemon printed (for failure messages).</summary>
    public string DaemonOutput
    {
        get
        {
            lock (_daemonOutput)
            {
                return _daemonOutput.ToString();
            }
        }
    }

    private void WaitReady(TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (_daemon.HasExited)
            {
                throw new InvalidOperationException($"faultfs.py exited with {_daemon.ExitCode} before mounting: {DaemonOutput}");
            }

            if (File.Exists(ControlSocket))
            {
                try
                {
                    if (Command("ping") == "ok ready" && IsMounted(MountPoint))
                    {
                        return;
                    }
                }
                catch (SocketException)
                {
                }
            }

            Thread.Sleep(50);
        }

        throw new TimeoutException($"faultfs did not mount {MountPoint} within {timeout}: {DaemonOutput}");
    }

    /// <summary>Whether <paramref name="path"/> is a mount point (listed in /proc/self/mountinfo).</summary>
    public static bool IsMounted(string path) =>
        File.ReadLines("/proc/self/mountinfo").Any(l => l.Split(' ') is { Length: > 4 } f && f[4] == path);

    /// <summary>Sends one control command and returns the reply line; throws on "error ...".</summary>
    public string Command(string command)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(ControlSocket));
        socket.Send(Encoding.UTF8.GetBytes(command + "\n"));
        var buffer = new byte[1 << 16];
        var reply = new StringBuilder();
        while (!reply.ToString().EndsWith('\n'))
        {
            var n = socket.Receive(buffer);
            if (n == 0)
            {
                break;
            }

            reply.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        var text = reply.ToString().Trim();
        if (text.StartsWith("error", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"faultfs command '{command}' failed: {text}");
        }

        return text;
    }

    /// <summary>Makes <paramref name="op"/> (write, fsync, fallocate, flush, ... or *) fail with
    /// <paramref name="errno"/> (EIO, ENOSPC) for paths matching <paramref name="glob"/>, <paramref name="count"/>
    /// times (null: until <see cref="Clear"/>).</summary>
    public void Fail(string op, string errno, string glob = "*", int? count = null) =>
        Command($"fail {op} {errno} glob={glob}" + (count is { } c ? $" count={c}" : string.Empty));

    public void Clear() => Command("clear");

    /// <summary>Number of calls of <paramref name="op"/> that were failed, from the daemon's stats.</summary>
    public int FailedCount(string op)
    {
        var stats = System.Text.Json.JsonDocument.Parse(Command("stats"));
        return stats.RootElement.GetProperty("failed").TryGetProperty(op, out var v) ? v.GetInt32() : 0;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (IsMounted(MountPoint))
        {
            // Lazy: a test process may still hold a mapping of a file on the mount.
            RunQuietly("umount", "-l", MountPoint);
        }

        if (!_daemon.WaitForExit(10_000))
        {
            _daemon.Kill(entireProcessTree: true);
            _daemon.WaitForExit(5_000);
        }

        _daemon.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static void RunQuietly(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi);
        p?.WaitForExit(10_000);
    }
}

/// <summary>A fact that needs FUSE: skipped (with the reason) only when /dev/fuse is absent outside CI.</summary>
public sealed class FuseFactAttribute : FactAttribute
{
    public FuseFactAttribute()
    {
        if (FaultFs.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
