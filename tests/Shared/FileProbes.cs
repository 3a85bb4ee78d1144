using System.Diagnostics;
using System.Globalization;

namespace PmemTests.Shared;

/// <summary>What the kernel says about a file or about this thread's I/O, read from outside the code under test.</summary>
public static class FileProbes
{
    /// <summary><c>filefrag -v</c> of <paramref name="path"/> (e2fsprogs): the FIEMAP extents with their flags ("unwritten", ...).</summary>
    public static string Filefrag(string path)
    {
        using var process = Process.Start(new ProcessStartInfo("filefrag", ["-v", path]) { RedirectStandardOutput = true })!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"filefrag -v {path} exited with {process.ExitCode}: {output}");
        }

        return output;
    }

    /// <summary>
    /// write_bytes of /proc/thread-self/io: bytes this thread caused to be written to storage (counted when
    /// it dirties page-cache pages, a whole folio at a time; per thread, so tests running in parallel do not add to it).
    /// </summary>
    public static long ThreadWriteBytes()
    {
        foreach (var line in File.ReadLines("/proc/thread-self/io"))
        {
            if (line.StartsWith("write_bytes:", StringComparison.Ordinal))
            {
                return long.Parse(line["write_bytes:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("/proc/thread-self/io has no write_bytes");
    }
}
