package meshops.spark;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.DelegateToFileSystem;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileUtil;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;

/**
 * DBFS on a laptop: {@code dbfs:/x} is the file {@code <root>/x}, the root being the folder in
 * the Hadoop setting {@value #ROOT_KEY}, so notebooks that read and write {@code dbfs:/} paths
 * run unchanged. {@code dbfs:/Volumes/...} is a Unity Catalog volume, as on Databricks: it maps
 * under {@link VolumesFileSystem#ROOT_KEY}, like {@code /Volumes/...}.
 *
 * <p>Registered as {@code fs.dbfs.impl}; {@link Fs} is the same for {@code FileContext} ({@code
 * fs.AbstractFileSystem.dbfs.impl}), which Delta's log store writes through. Statuses carry the
 * {@code dbfs:/} path that was asked for: Spark matches listed files against its input paths.
 * No checksum files are written, as on DBFS.
 */
public class DbfsFileSystem extends RawLocalFileSystem {
  public static final String ROOT_KEY = "meshops.dbfs.root";
  public static final String SCHEME = "dbfs";
  static final URI URI_ROOT = URI.create(SCHEME + ":///");
  static final String VOLUMES = "/Volumes";

  private volatile File root;
  private volatile File volumes;

  @Override
  public void initialize(URI uri, Configuration conf) throws IOException {
    super.initialize(uri, conf);
    String configured = conf.get(ROOT_KEY, "");
    if (configured.isEmpty()) {
      throw new IOException(
          "dbfs:/ paths need the Hadoop setting " + ROOT_KEY + " (spark.hadoop." + ROOT_KEY + ")");
    }
    root = new File(configured).getAbsoluteFile();
    String vols = conf.get(VolumesFileSystem.ROOT_KEY, "");
    volumes = vols.isEmpty() ? null : new File(vols).getAbsoluteFile();
  }

  @Override
  public String getScheme() {
    return SCHEME;
  }

  @Override
  public URI getUri() {
    return URI_ROOT;
  }

  /** Called by the parent's constructor: must not use instance fields. */
  @Override
  protected Path getInitialWorkingDirectory() {
    return new Path(URI_ROOT);
  }

  @Override
  public Path getHomeDirectory() {
    return makeQualified(new Path("/"));
  }

  @Override
  public File pathToFile(Path path) {
    checkPath(path);
    if (!path.isAbsolute()) {
      path = new Path(getWorkingDirectory(), path);
    }
    String local = path.toUri().getPath();
    File base = root;
    if (base == null) {
      throw new IllegalStateException(getClass().getName() + " is not initialized");
    }
    File vols = volumes;
    if (vols != null && (local.equals(VOLUMES) || local.startsWith(VOLUMES + "/"))) {
      String rest = local.substring(VOLUMES.length());
      return rest.isEmpty() || rest.equals("/") ? vols : new File(vols, rest.substring(1));
    }
    String rest = local.replaceFirst("^/+", "");
    return rest.isEmpty() ? base : new File(base, rest);
  }

  /** A plain status of the local file, under the {@code dbfs:/} path asked for. */
  @Override
  public FileStatus getFileStatus(Path path) throws IOException {
    File file = pathToFile(path);
    BasicFileAttributes attrs;
    try {
      attrs = Files.readAttributes(file.toPath(), BasicFileAttributes.class);
    } catch (java.nio.file.NoSuchFileException e) {
      throw new FileNotFoundException("File " + path + " does not exist");
    }
    return new FileStatus(
        attrs.isDirectory() ? 0 : attrs.size(),
        attrs.isDirectory(),
        1,
        getDefaultBlockSize(path),
        attrs.lastModifiedTime().toMillis(),
        attrs.lastAccessTime().toMillis(),
        null,
        null,
        null,
        makeQualified(path));
  }

  @Override
  public FileStatus getFileLinkStatus(Path path) throws IOException {
    return getFileStatus(path);
  }

  @Override
  public boolean supportsSymlinks() {
    return false;
  }

  @Override
  public FileStatus[] listStatus(Path path) throws IOException {
    File local = pathToFile(path);
    if (!local.exists()) {
      throw new FileNotFoundException("File " + path + " does not exist");
    }
    if (!local.isDirectory()) {
      return new FileStatus[] {getFileStatus(path)};
    }
    List<FileStatus> found = new ArrayList<>();
    for (String name : FileUtil.list(local)) {
      try {
        // the three-argument Path keeps a name with a colon a name
        found.add(getFileStatus(new Path(path, new Path(null, null, name))));
      } catch (FileNotFoundException e) {
        // deleted since the listing
      }
    }
    return found.toArray(new FileStatus[0]);
  }

  /** {@code dbfs:} for {@code FileContext} users (Delta's HDFS log store). */
  public static final class Fs extends DelegateToFileSystem {
    public Fs(URI uri, Configuration conf) throws IOException, URISyntaxException {
      super(uri, new DbfsFileSystem(), conf, SCHEME, false);
    }
  }
}
