// Placeholder entry point; replaced by the BenchmarkDotNet front-end.
return 0;
