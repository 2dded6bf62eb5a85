#!/bin/sh
echo "args: $1 / $2" > report.txt
echo "wrote $(pwd)/report.txt"
echo "a warning" >&2
