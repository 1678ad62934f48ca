pub mod nab_data;
