package meshops.spark;

import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.connector.catalog.TruncatableTable;
import org.apache.spark.sql.connector.catalog.V1Table;

/**
 * The read side of a table of a {@link UnityCatalog}: the session catalog's {@link V1Table}, so
 * Spark reads it through its V1 file scan, plus {@code TRUNCATE TABLE}, which Spark asks of
 * this object rather than of the writer's.
 */
final class ReadableTable extends V1Table implements TruncatableTable {
  private static final long serialVersionUID = 1L;

  private final String fullName;

  ReadableTable(String fullName, CatalogTable target) {
    super(target);
    this.fullName = fullName;
  }

  @Override
  public boolean truncateTable() {
    SparkSession spark = SparkSession.active();
    spark.sql("TRUNCATE TABLE " + MappedTable.targetName(catalogTable()));
    TaskWrites.record(spark.sparkContext(), fullName);
    return true;
  }
}
