using Pmem2.NativeTests.Infrastructure;

namespace Pmem2.NativeTests;

/// <summary>
/// Entry point of the test assembly when it is started as a child process (GenerateProgramFile is off).
/// libpmem2 and our engine selection both read PMEM_NO_MOVNT, PMEM_AVX, PMEM_WC_WORKAROUND, ... only
/// once per process, so <see cref="MemEngineTests"/> runs the mem differential once per engine in a child
/// started with those variables: <c>dotnet Pmem2.NativeTests.dll mem-differential DIR</c>.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 2 && args[0] == "mem-differential")
        {
            try
            {
                var result = MemDifferential.Run(args[1], portedOnly: false, MemMode.All);
                Console.WriteLine($"ENGINE {result.OursEngine}");
                Console.WriteLine($"CASES {result.Cases}");
                Console.WriteLine($"OPERATIONS {result.Operations}");
                Console.WriteLine($"CHECKS {result.Checks}");
                Console.WriteLine($"FILEBYTES {result.FileBytesCompared}");
                foreach (var m in result.Mismatches)
                {
                    Console.WriteLine($"MISMATCH {m}");
                }

                foreach (var d in result.OracleDisagreements)
                {
                    Console.WriteLine($"DISAGREE {d}");
                }

                return 0;
            }
            catch (Exception e)
            {
                Console.WriteLine($"CRASH {e}");
                return 2;
            }
        }

        Console.Error.WriteLine("usage: Pmem2.NativeTests mem-differential DIR (test assembly; run the tests with dotnet test)");
        return 1;
    }
}
