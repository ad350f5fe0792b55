package meshops.spark;

/**
 * A meshops property of the current thread, for embedded sessions and Spark Connect clients alike.
 *
 * <p>An embedded session's Python thread sets Spark local properties ({@code meshops.task}, {@code
 * meshops.readOnlyCatalogs}); a Spark Connect client cannot, so its thread adds the session tag
 * {@code <name>=<value>} instead, which the server puts among the job tags ({@value #JOB_TAGS}) of
 * each operation of that thread as {@code SparkConnect_SessionTag_User_<u>_Session_<s>_Tag_<tag>}.
 * Either way the value reaches the driver thread that analyses and runs the operation and the
 * executor tasks it starts.
 */
final class ThreadProperties {
  /** The local property holding a thread's job tags ({@code SparkContext.SPARK_JOB_TAGS}). */
  static final String JOB_TAGS = "spark.job.tags";

  private static final String CONNECT_TAG = "SparkConnect_SessionTag_";

  private ThreadProperties() {}

  /** {@code local} when set, else the value of the Connect session tag {@code name=...}, or null. */
  static String get(String local, String jobTags, String name) {
    if (local != null || jobTags == null) {
      return local;
    }
    String marker = "_Tag_" + name + "=";
    for (String tag : jobTags.split(",")) {
      int at = tag.indexOf(marker);
      if (tag.startsWith(CONNECT_TAG) && at > 0) {
        return tag.substring(at + marker.length());
      }
    }
    return null;
  }
}
