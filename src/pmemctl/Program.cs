// Placeholder entry point; replaced by the pmemctl command tree.
return 0;
