// Each test runs real service processes (and FUSE daemons, strace) on a 2-core machine: one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
