from ava_platform.cli import main

main()
