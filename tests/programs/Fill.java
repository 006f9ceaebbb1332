// Fill.java - a Java heap of 512 MB: 64 arrays of 8 MB filled and summed
// (room: tests).  Run under dsm-run by tests/test_preload_programs.sh and
// bench/preload.sh: its output must be the same as without the shim.
public class Fill {
    public static void main(String[] a) {
        long[][] blocks = new long[64][];
        long sum = 0;
        for (int i = 0; i < blocks.length; i++) {
            blocks[i] = new long[1 << 20];
            for (int j = 0; j < blocks[i].length; j++) blocks[i][j] = (long) i * 31 + j;
        }
        for (long[] b : blocks) for (long v : b) sum += v;
        System.out.println("sum " + sum);
    }
}
