#include <stdio.h>
int main(void) { puts("cquant"); return 0; }
